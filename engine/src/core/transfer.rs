//! Handing a step to another office of the same kind (转办, issue 11.2): by a role the step's
//! `transfer by` names, with a reason, to another office holding the step's bound role (R6.1).
//! The step is then that office's alone — the office it came from is refused (F035) — and it
//! keeps its limit (the owner's limit runs on, R3.5: a breach falls at the original instant),
//! unless the policy says `restart`: then the limit is counted again from the transfer.

use civicflow_dsl::ir;

use super::binding::{bound_on, Bound};
use super::period::{self, PeriodEnd};
use super::{Decision, Event, Refusal};

impl Decision<'_> {
    pub(super) fn transfer(&mut self, key: &str, def: &ir::Node, to: &str, reason: &str) -> Result<(), Refusal> {
        if reason.trim().is_empty() {
            return Err(Refusal::ReasonRequired { action: "transfer".into() });
        }
        let to = to.trim();
        if to.is_empty() {
            return Err(Refusal::BadField { node: key.into(), field: "to".into(), problem: "name the office".into() });
        }
        // The step's roles that are bound to an office (R6.1): those the transfer hands on.
        let bound: Vec<(String, Option<String>)> = def
            .roles
            .iter()
            .filter(|r| self.ctx.program.policy.roles.iter().any(|x| &x.name == *r && x.bound.is_some()))
            .map(|r| {
                let from = match bound_on(self.ctx.program, &self.state, key, r) {
                    Bound::Office(o) => Some(o.to_string()),
                    Bound::Open | Bound::Pending(_) => None,
                };
                (r.clone(), from)
            })
            .collect();
        if bound.is_empty() {
            return Err(Refusal::NothingToTransfer { node: key.into() });
        }
        if bound.iter().all(|(_, from)| from.as_deref() == Some(to)) {
            return Err(Refusal::BadField {
                node: key.into(),
                field: "to".into(),
                problem: format!("the step is already with `{to}`"),
            });
        }
        for (role, from) in bound {
            self.emit(Event::Transferred {
                node: key.into(),
                role,
                from,
                to: to.to_string(),
                reason: reason.to_string(),
            });
        }
        if def.transfer.as_ref().is_some_and(|t| t.restart) {
            if let Some(ir::Deadline::AfterOpen { span, roll }) = &def.deadline {
                let offset = self.ctx.program.offset;
                let span = self.resolved_span(def, *span, super::amounts::Which::Due)?;
                if let PeriodEnd::At(due_at) = period::period_end(self.ctx.calendar, offset, self.now, span, *roll)? {
                    self.emit(Event::DeadlineSet { node: key.into(), due_at });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use chrono::{DateTime, Utc};

    use crate::core::{Action, Actor, Event};
    use crate::sim::{text, Simulation};

    /// The department is named by a parameter; the coordinating office hands the step on, with
    /// its limit counted again (`restart`).
    const TRANSFERABLE: &str = r#"
policy 转办演练 {
  param 部门: text
  role 承办部门 bound by param 部门
  role 协调办
  step 办理: task { by 承办部门 due 5 workdays transfer by 协调办 restart }
}"#;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn dept(office: &str) -> Actor {
        Actor { principal: format!("{office}-1"), office: office.into(), role: "承办部门".into() }
    }

    #[test]
    fn issue_11_2_a_transfer_hands_the_step_to_the_other_office_and_restarts_its_limit_as_declared() {
        let mut s = Simulation::new(TRANSFERABLE, "2026-09-25 10:00").unwrap();
        s.start(&[("部门", text("城管局"))]).unwrap();
        // Friday 09-25 + 5 working days: 09-28 … 09-30, then (国庆 10-01 … 10-07) 10-08, 10-09.
        assert_eq!(s.state.nodes.get("办理").unwrap().due_at, Some(utc("2026-10-09T16:00:00Z")));
        s.advance_to("2026-09-28 09:00").unwrap();
        let moved =
            s.act("协调办", "办理", Action::Transfer { to: "住建局".into(), reason: "职责不符".into() }).unwrap();
        // Counted again from Monday 09-28: 09-29, 09-30, 10-08, 10-09, the make-up Saturday 10-10.
        assert_eq!(
            moved,
            vec![
                Event::Transferred {
                    node: "办理".into(),
                    role: "承办部门".into(),
                    from: Some("城管局".into()),
                    to: "住建局".into(),
                    reason: "职责不符".into(),
                },
                Event::DeadlineSet { node: "办理".into(), due_at: utc("2026-10-10T16:00:00Z") },
            ]
        );
        let done = || Action::Complete { report: "已办结".into() };
        assert_eq!(s.act_as(dept("城管局"), "办理", done()).unwrap_err().code(), "F035");
        let again =
            s.act("协调办", "办理", Action::Transfer { to: "住建局".into(), reason: "再转".into() }).unwrap_err();
        assert_eq!(again.to_string(), "step `办理`, field `to`: the step is already with `住建局`");
        let own = s.act_as(dept("住建局"), "办理", Action::Transfer { to: "城管局".into(), reason: "退回".into() });
        assert_eq!(own.unwrap_err().code(), "F053");
        s.act_as(dept("住建局"), "办理", done()).unwrap();
        assert_eq!(s.replayed(), s.state);
    }
}
