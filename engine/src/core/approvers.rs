//! Adding and removing approvers while an approval step is open (加签 / 减签, issue 11.2): by a
//! role the step's `approvers by … from …` names, with a reason. An approver is added from the
//! policy's pool; one is removed only before it has acted (nobody's approval is lost) and only
//! while the rule keeps enough approvers (`k of n` needs k; any other rule one). The rule's
//! arithmetic runs over the approvers as they are now (`breach::as_running`), so a removal can
//! decide the step at once (会签 whose last missing approver is removed is approved).

use civicflow_dsl::ir::{self, ApprovalRule};

use super::breach::as_running;
use super::{rules, Decision, Event, Refusal};

impl Decision<'_> {
    pub(super) fn change_approvers(&mut self, key: &str, add: bool, role: &str, reason: &str) -> Result<(), Refusal> {
        if reason.trim().is_empty() {
            let action = if add { "add_approver" } else { "remove_approver" };
            return Err(Refusal::ReasonRequired { action: action.into() });
        }
        let n = self.state.nodes.get(key).ok_or_else(|| Refusal::UnknownStep { node: key.into() })?;
        let def = self.ctx.program.node(&n.def).ok_or_else(|| Refusal::UnknownStep { node: key.into() })?;
        let running = as_running(def, n);
        let refuse = |why: String| Refusal::ApproverChangeRefused { node: key.into(), role: role.into(), why };
        let pool = def.approvers.as_ref().map_or(&[][..], |a| a.pool.as_slice());
        if add {
            if running.roles.iter().any(|r| r == role) {
                return Err(refuse("it is already an approver".into()));
            }
            if !pool.iter().any(|r| r == role) {
                return Err(refuse(format!("approvers are added from {}", quoted(pool))));
            }
            if let Some(max) = def.approvers.as_ref().and_then(|a| a.max) {
                if running.roles.len() >= max as usize {
                    return Err(refuse(format!(
                        "the step has {} approvers, the most its `approvers … max` allows",
                        running.roles.len()
                    )));
                }
            }
        } else {
            if !running.roles.iter().any(|r| r == role) {
                return Err(refuse("it is not an approver of the step".into()));
            }
            if n.acts.iter().any(|a| a.actor.role == role && matches!(a.action.as_str(), "approve" | "reject")) {
                return Err(refuse("it has acted already; its act stays".into()));
            }
            let least = match running.rule {
                Some(ApprovalRule::AtLeast { k }) => k as usize,
                _ => 1,
            };
            if running.roles.len() - 1 < least {
                return Err(refuse(format!("the rule needs at least {least} approvers")));
            }
        }
        let (node, role, reason) = (key.to_string(), role.to_string(), reason.to_string());
        self.emit(if add {
            Event::ApproverAdded { node, role, reason }
        } else {
            Event::ApproverRemoved { node, role, reason }
        });
        // The rule over the approvers as they are now: a removal may decide the step.
        let Some(n) = self.state.nodes.get(key) else { return Ok(()) };
        let now_running: ir::Node = as_running(def, n).into_owned();
        if let Some(outcome) = rules::approval_outcome(&now_running, &n.acts) {
            self.finish_approval(key, &now_running, outcome)?;
        }
        Ok(())
    }
}

fn quoted(roles: &[String]) -> String {
    if roles.is_empty() {
        return "nobody (the policy names no pool)".into();
    }
    roles.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use crate::core::{Action, Event, NodeStatus, Outcome};
    use crate::sim::Simulation;

    /// 会签 of two offices; the leader may add the finance or audit office, or remove one who has
    /// not signed.
    const COSIGN: &str = r#"
policy 会签演练 {
  role 甲科
  role 乙科
  role 财政科
  role 审计科
  role 分管领导
  step 会签: approval { by 甲科, 乙科 rule all approvers by 分管领导 from 财政科, 审计科 }
}"#;

    fn add(role: &str) -> Action {
        Action::AddApprover { role: role.into(), reason: "涉及资金".into() }
    }

    fn remove(role: &str) -> Action {
        Action::RemoveApprover { role: role.into(), reason: "不涉及本科室".into() }
    }

    fn approve() -> Action {
        Action::Approve { comment: None }
    }

    #[test]
    fn issue_11_2_an_added_approver_must_sign_a_cosign_and_a_removed_one_need_not() {
        let mut s = Simulation::new(COSIGN, "2026-03-02 09:00").unwrap();
        s.start(&[]).unwrap();
        assert_eq!(s.act("甲科", "会签", add("财政科")).unwrap_err().code(), "F055");
        assert_eq!(
            s.act("分管领导", "会签", add("甲科")).unwrap_err().to_string(),
            "the approvers of step `会签` cannot change for `甲科`: it is already an approver"
        );
        assert_eq!(
            s.act("分管领导", "会签", add("分管领导")).unwrap_err().to_string(),
            "the approvers of step `会签` cannot change for `分管领导`: approvers are added from `财政科`, `审计科`"
        );
        let added = s.act("分管领导", "会签", add("财政科")).unwrap();
        assert_eq!(
            added,
            vec![Event::ApproverAdded {
                node: "会签".into(), role: "财政科".into(), reason: "涉及资金".into()
            }]
        );
        // 会签 over three now: two signatures do not decide it; the finance office may sign.
        s.act("甲科", "会签", approve()).unwrap();
        s.act("乙科", "会签", approve()).unwrap();
        assert_eq!(s.status_of("会签"), Some(NodeStatus::Open));
        // Who has signed stays: 甲科 cannot be removed.
        assert_eq!(s.act("分管领导", "会签", remove("甲科")).unwrap_err().code(), "F056");
        // Removing the one still missing decides the step at once.
        let removed = s.act("分管领导", "会签", remove("财政科")).unwrap();
        assert_eq!(
            removed[0],
            Event::ApproverRemoved {
                node: "会签".into(), role: "财政科".into(), reason: "不涉及本科室".into()
            }
        );
        assert_eq!(s.state.nodes.get("会签").unwrap().outcome, Some(Outcome::Approved));
        assert_eq!(s.replayed(), s.state);
    }

    #[test]
    fn issue_11_2_k_of_n_keeps_k_approvers() {
        let src = COSIGN.replace("rule all", "rule 2 of 2");
        let mut s = Simulation::new(&src, "2026-03-02 09:00").unwrap();
        s.start(&[]).unwrap();
        assert_eq!(
            s.act("分管领导", "会签", remove("乙科")).unwrap_err().to_string(),
            "the approvers of step `会签` cannot change for `乙科`: the rule needs at least 2 approvers"
        );
        s.act("分管领导", "会签", add("审计科")).unwrap();
        s.act("分管领导", "会签", remove("乙科")).unwrap();
        s.act("甲科", "会签", approve()).unwrap();
        assert_eq!(s.act("乙科", "会签", approve()).unwrap_err().code(), "F006", "removed: no longer entitled");
        s.act("审计科", "会签", approve()).unwrap();
        assert_eq!(s.state.nodes.get("会签").unwrap().outcome, Some(Outcome::Approved));
        assert_eq!(s.replayed(), s.state);
    }

    #[test]
    fn issue_11_2_an_approver_is_not_added_past_the_policys_bound() {
        let bounded = COSIGN.replace("from 财政科, 审计科 }", "from 财政科, 审计科 max 3 }");
        let mut s = Simulation::new(&bounded, "2026-03-02 09:00").unwrap();
        s.start(&[]).unwrap();
        s.act("分管领导", "会签", add("财政科")).unwrap();
        let past = s.act("分管领导", "会签", add("审计科")).unwrap_err();
        assert_eq!(past.code(), "F056");
        assert_eq!(
            past.to_string(),
            "the approvers of step `会签` cannot change for `审计科`: the step has 3 approvers, the most its `approvers … max` allows"
        );
        // One removed, another may be added.
        s.act("分管领导", "会签", remove("乙科")).unwrap();
        s.act("分管领导", "会签", add("审计科")).unwrap();
        assert_eq!(s.replayed(), s.state);
    }
}
