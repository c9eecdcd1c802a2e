//! Extending a step's deadline (延期, issue 11.1): by a role the step's `extend by` names, with a
//! reason, by at most its `max` in all. The new deadline is counted on from the last day of the
//! old one, on the working-day calendar (R0.1: it ends at 24:00 of its last day); the event
//! records both deadlines, the amount and the reason, and its actor says who. A breach already
//! recorded stays recorded: the step stays overdue, and nothing is escalated twice.
//!
//! Where the policy says `approved by S`, the extension is itself an approval: the roles of
//! `extend by` ask for it (`ExtensionRequested`), one of S approves it — the deadline then moves,
//! counted from the deadline as it is at the approval — or refuses it with a reason; one request
//! waits at a time (F062, F063).

use chrono::TimeDelta;
use civicflow_dsl::ir;

use super::period::{self, PeriodEnd};
use super::{Decision, Event, Refusal};

impl Decision<'_> {
    pub(super) fn extend(&mut self, key: &str, def: &ir::Node, amount: u32, reason: &str) -> Result<(), Refusal> {
        if reason.trim().is_empty() {
            return Err(Refusal::ReasonRequired { action: "extend".into() });
        }
        let Some(rule) = def.extend.as_ref() else {
            return Err(Refusal::ExtensionNotAllowed { node: key.into(), role: String::new(), allowed: Vec::new() });
        };
        let n = self.state.nodes.get(key).ok_or_else(|| Refusal::UnknownStep { node: key.into() })?;
        if n.extension_asked.is_some() {
            return Err(Refusal::ExtensionPending { node: key.into() });
        }
        let Some(from) = n.due_at else {
            return Err(Refusal::NoDeadlineToExtend { node: key.into() });
        };
        let used = n.extended;
        if amount == 0 || used.saturating_add(amount) > rule.max.amount {
            return Err(Refusal::ExtensionTooLong { node: key.into(), asked: amount, used, max: rule.max });
        }
        let to = self.extended_deadline(key, from, amount, rule)?;
        if !rule.approved_by.is_empty() {
            self.emit(Event::ExtensionRequested { node: key.into(), amount, reason: reason.to_string() });
            return Ok(());
        }
        self.emit(Event::Extended { node: key.into(), from, to, amount, reason: reason.to_string() });
        Ok(())
    }

    /// Issue 11.1: a role of `extend … approved by` approves (`approve`) or refuses the extension
    /// asked for; approved, the deadline moves as it would have at once.
    pub(super) fn decide_extension(
        &mut self,
        key: &str,
        def: &ir::Node,
        approve: bool,
        text: Option<&str>,
    ) -> Result<(), Refusal> {
        let Some(rule) = def.extend.as_ref() else {
            return Err(Refusal::ExtensionNotAllowed { node: key.into(), role: String::new(), allowed: Vec::new() });
        };
        let n = self.state.nodes.get(key).ok_or_else(|| Refusal::UnknownStep { node: key.into() })?;
        let Some(asked) = n.extension_asked.clone() else {
            return Err(Refusal::NoExtensionAsked { node: key.into() });
        };
        if !approve {
            let reason = text.map(str::trim).unwrap_or_default();
            if reason.is_empty() {
                return Err(Refusal::ReasonRequired { action: "reject_extension".into() });
            }
            self.emit(Event::ExtensionRejected { node: key.into(), reason: reason.to_string() });
            return Ok(());
        }
        let Some(from) = n.due_at else {
            return Err(Refusal::NoDeadlineToExtend { node: key.into() });
        };
        let to = self.extended_deadline(key, from, asked.amount, rule)?;
        self.emit(Event::Extended { node: key.into(), from, to, amount: asked.amount, reason: asked.reason });
        Ok(())
    }

    /// The deadline `from` moved later by `amount` of the unit of `max`, counted on from its last
    /// day (R0.1).
    fn extended_deadline(
        &self,
        key: &str,
        from: chrono::DateTime<chrono::Utc>,
        amount: u32,
        rule: &ir::Extension,
    ) -> Result<chrono::DateTime<chrono::Utc>, Refusal> {
        let offset = self.ctx.program.offset;
        // The old deadline's last day: 24:00 of it is 00:00 of the next.
        let last_day = (from - TimeDelta::seconds(1)).with_timezone(&offset).date_naive();
        let span = ir::Span { amount, unit: rule.max.unit };
        let to = match period::period_end_from_day(self.ctx.calendar, offset, last_day, span, false)? {
            PeriodEnd::At(to) => to,
            PeriodEnd::AwaitingCalendar { year } => {
                return Err(Refusal::Calendar {
                    message: format!(
                        "extending step `{key}` by {span} counts into {year}, whose working-day calendar is not \
                         published yet; extend it once the year is added"
                    ),
                })
            }
        };
        Ok(to)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use chrono::{DateTime, Utc};

    use crate::core::{pending_timers, Action, Event, TimerKind};
    use crate::sim::Simulation;

    /// A department's task due in 3 working days, which the coordinating office may extend by 5
    /// working days in all.
    const EXTENDABLE: &str = r#"
policy 办理 {
  role 承办科室
  role 协调办
  step 办结: task {
    by 承办科室
    due 3 workdays
    on breach overdue, escalate 协调办
    extend by 协调办 max 5 workdays
  }
}"#;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn extend(amount: u32, reason: &str) -> Action {
        Action::Extend { amount, reason: reason.into() }
    }

    fn due_timers(s: &Simulation) -> Vec<DateTime<Utc>> {
        pending_timers(s.ctx(), &s.state).into_iter().filter(|t| t.kind == TimerKind::Due).map(|t| t.at).collect()
    }

    #[test]
    fn issue_11_1_an_extension_across_the_2026_national_day_holiday_ends_on_the_make_up_saturday() {
        // Opened Friday 09-25: 3 working days are 09-28, 09-29, 09-30 → the end of Wednesday 09-30.
        let mut s = Simulation::new(EXTENDABLE, "2026-09-25 10:00").unwrap();
        s.start(&[]).unwrap();
        let first = utc("2026-09-30T16:00:00Z");
        assert_eq!(s.state.nodes.get("办结").unwrap().due_at, Some(first));
        // 3 more working days: 10-01 … 10-07 are the holiday; 10-08, 10-09 and the make-up
        // Saturday 10-10 are working days → the end of Saturday 10-10.
        let events = s.act("协调办", "办结", extend(3, "需会同住建部门现场核查")).unwrap();
        let moved = utc("2026-10-10T16:00:00Z");
        assert_eq!(
            events,
            vec![Event::Extended {
                node: "办结".into(),
                from: first,
                to: moved,
                amount: 3,
                reason: "需会同住建部门现场核查".into()
            }]
        );
        assert_eq!(due_timers(&s), vec![moved], "the deadline's timer moved, once");
        // 2 working days are left of the 5: 3 more is refused with what is left.
        let refused = s.act("协调办", "办结", extend(3, "再次延期")).unwrap_err();
        assert_eq!(refused.code(), "F048");
        assert_eq!(
            refused.to_string(),
            "step `办结` may be extended by at most 5 workdays in all; 3 used, 2 left, 3 asked"
        );
        // The last 2: Monday 10-12 and Tuesday 10-13 (Sunday 10-11 is a rest day).
        s.act("协调办", "办结", extend(2, "等待检测报告")).unwrap();
        assert_eq!(s.state.nodes.get("办结").unwrap().due_at, Some(utc("2026-10-13T16:00:00Z")));
        assert_eq!(s.state.nodes.get("办结").unwrap().extended, 5);
        assert_eq!(s.replayed(), s.state);
        // Nothing lapses before the new deadline; after it, the breach at exactly that instant.
        s.advance_to("2026-10-13 23:00").unwrap();
        assert!(!s.state.nodes.get("办结").unwrap().overdue);
        let breach = s.advance_to("2026-10-14 09:00").unwrap();
        assert_eq!(
            breach,
            vec![
                Event::Overdue { node: "办结".into(), due_at: utc("2026-10-13T16:00:00Z") },
                Event::Escalated {
                    node: "办结".into(), role: "协调办".into(), due_at: utc("2026-10-13T16:00:00Z")
                },
            ]
        );
    }

    #[test]
    fn issue_11_1_an_extension_after_the_breach_does_not_erase_it() {
        let mut s = Simulation::new(EXTENDABLE, "2026-03-02 09:00").unwrap();
        s.start(&[]).unwrap();
        s.advance_to("2026-03-06 09:00").unwrap();
        assert!(s.state.nodes.get("办结").unwrap().overdue);
        s.act("协调办", "办结", extend(2, "补正材料")).unwrap();
        let n = s.state.nodes.get("办结").unwrap();
        // 03-05 (Thursday) + 2 working days: the end of Monday 03-09.
        assert_eq!((n.overdue, n.due_at), (true, Some(utc("2026-03-09T16:00:00Z"))));
        assert_eq!(n.escalated_to, vec!["协调办".to_string()]);
        assert!(due_timers(&s).is_empty(), "the breach is recorded once; no second one at the new deadline");
        assert!(s.advance_to("2026-03-10 09:00").unwrap().is_empty());
    }

    #[test]
    fn issue_11_1_an_owners_limit_keeps_its_extension_and_what_is_left_of_it_through_a_return() {
        let src = r#"
policy 限期 {
  role 分流办
  role 承办科室
  role 协调办
  step 分流: task { by 分流办 }
  step 办结: task {
    by 承办科室
    after 分流
    owned
    due 3 workdays
    may return 分流 by 承办科室
    extend by 协调办 max 5 workdays
  }
}"#;
        let mut s = Simulation::new(src, "2026-03-02 09:00").unwrap();
        s.start(&[]).unwrap();
        s.act("分流办", "分流", Action::Complete { report: "分给承办科室".into() }).unwrap();
        // Monday 03-02 + 3 working days → the end of Thursday 03-05; + 3 → the end of 03-10.
        s.act("协调办", "办结", extend(3, "需补充材料")).unwrap();
        assert_eq!(s.state.nodes.get("办结").unwrap().due_at, Some(utc("2026-03-10T16:00:00Z")));
        // Passed back (推诿) and assigned again: the limit and the extension used go with it.
        s.act("承办科室", "办结", Action::ReturnTo { target: "分流".into(), reason: "不属本科室".into() }).unwrap();
        s.act("分流办", "分流", Action::Complete { report: "仍由承办科室办理".into() }).unwrap();
        let n = s.state.nodes.get("办结").unwrap();
        assert_eq!((n.due_at, n.extended), (Some(utc("2026-03-10T16:00:00Z")), 3));
        assert_eq!(s.act("协调办", "办结", extend(3, "再延")).unwrap_err().code(), "F048");
        s.act("协调办", "办结", extend(2, "最后两日")).unwrap();
        assert_eq!(s.replayed(), s.state);
    }

    #[test]
    fn issue_11_1_only_the_named_roles_extend_with_a_reason_by_a_whole_amount() {
        let mut s = Simulation::new(EXTENDABLE, "2026-03-02 09:00").unwrap();
        s.start(&[]).unwrap();
        let own = s.act("承办科室", "办结", extend(1, "来不及")).unwrap_err();
        assert_eq!(own.code(), "F047");
        assert_eq!(own.to_string(), "role `承办科室` may not extend step `办结`; extending it is for `协调办`");
        assert_eq!(s.act("协调办", "办结", extend(1, "  ")).unwrap_err().code(), "F018");
        assert_eq!(s.act("协调办", "办结", extend(0, "零")).unwrap_err().code(), "F048");
        assert_eq!(s.act("协调办", "办结", extend(6, "太长")).unwrap_err().code(), "F048");
        assert_eq!(s.state.nodes.get("办结").unwrap().extended, 0, "refusals record nothing");
    }

    #[test]
    fn issue_11_1_an_extension_approved_by_a_higher_role_moves_the_deadline_only_then() {
        let src = EXTENDABLE
            .replace("extend by 协调办 max 5 workdays", "extend by 承办科室 max 5 workdays approved by 协调办");
        let mut s = Simulation::new(&src, "2026-09-25 10:00").unwrap();
        s.start(&[]).unwrap();
        let first = utc("2026-09-30T16:00:00Z");
        // The department asks; nothing moves yet, and it may not approve its own request.
        let asked = s.act("承办科室", "办结", extend(3, "需会同住建部门现场核查")).unwrap();
        assert_eq!(
            asked,
            vec![Event::ExtensionRequested {
                node: "办结".into(), amount: 3, reason: "需会同住建部门现场核查".into()
            }]
        );
        assert_eq!((s.state.nodes.get("办结").unwrap().due_at, due_timers(&s)), (Some(first), vec![first]));
        assert_eq!(s.act("承办科室", "办结", extend(1, "再要一天")).unwrap_err().code(), "F062");
        let own = s.act("承办科室", "办结", Action::ApproveExtension { comment: None }).unwrap_err();
        assert_eq!(own.to_string(), "role `承办科室` may not extend step `办结`; extending it is for `协调办`");
        // The coordinating office approves: the deadline moves as it would have at once.
        s.advance_to("2026-09-28 09:00").unwrap();
        let approved = s.act("协调办", "办结", Action::ApproveExtension { comment: Some("同意延期".into()) }).unwrap();
        let moved = utc("2026-10-10T16:00:00Z");
        assert_eq!(
            approved,
            vec![Event::Extended {
                node: "办结".into(),
                from: first,
                to: moved,
                amount: 3,
                reason: "需会同住建部门现场核查".into()
            }]
        );
        assert_eq!(due_timers(&s), vec![moved]);
        // A second request, refused with a reason: the deadline stays; nothing waits then.
        s.act("承办科室", "办结", extend(2, "等待检测报告")).unwrap();
        let blank = s.act("协调办", "办结", Action::RejectExtension { reason: " ".into() }).unwrap_err();
        assert_eq!(blank.code(), "F018");
        let no = s.act("协调办", "办结", Action::RejectExtension { reason: "理由不充分".into() }).unwrap();
        assert_eq!(no, vec![Event::ExtensionRejected { node: "办结".into(), reason: "理由不充分".into() }]);
        assert_eq!(s.state.nodes.get("办结").unwrap().due_at, Some(moved));
        let none = s.act("协调办", "办结", Action::ApproveExtension { comment: None }).unwrap_err();
        assert_eq!(none.to_string(), "no extension of step `办结` waits for approval");
        assert_eq!(s.replayed(), s.state);
    }
}
