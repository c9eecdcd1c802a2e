//! A missed deadline (超期), decided purely: what the policy's `on breach` says happens at the
//! instant it occurs (R3.5).
//!
//! - `overdue` is always recorded; `escalate R` (追究责任/督办) and `notify R` tell the role.
//! - `reject` closes the step as rejected.
//! - `reassign R` (提级办理): R takes the step over. From then on R alone acts on it and its one
//!   act decides (an approval's rule becomes "any": the roles that missed the limit no longer
//!   count). The step stays overdue: the breach is part of the history, not erased.
//! - `return X`: the matter goes back to the earlier step X, as `on rejected return` would. It
//!   is the policy's own return, so no role's permission applies and, unlike a return by hand
//!   out of an `owned` step, it is not passing the matter on (推诿).
//!
//! The return comes last, after the other actions are recorded on the late step.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use civicflow_dsl::ir::{self, ApprovalRule, NodeKind, StepKind};

use super::{Decision, Event, NodeState, Outcome, Refusal};

/// The roles that act on the step now: the one that took it over after a breach, else `by` with
/// the approvers added (加签) and without those removed (减签, issue 11.2).
pub fn acting_roles<'a>(def: &'a ir::Node, n: &'a NodeState) -> Cow<'a, [String]> {
    match &n.reassigned_to {
        Some(role) => Cow::Borrowed(std::slice::from_ref(role)),
        None if n.added_roles.is_empty() && n.removed_roles.is_empty() => Cow::Borrowed(&def.roles),
        None => Cow::Owned(
            def.roles.iter().chain(&n.added_roles).filter(|r| !n.removed_roles.contains(r)).cloned().collect(),
        ),
    }
}

/// The step as it runs now: after `on breach reassign R`, R alone in `by`, deciding alone; else
/// with its approvers as added and removed, the rule's arithmetic over them.
pub(super) fn as_running<'d>(def: &'d ir::Node, n: &NodeState) -> Cow<'d, ir::Node> {
    if let Some(role) = &n.reassigned_to {
        let mut taken = def.clone();
        taken.roles = vec![role.clone()];
        if taken.rule.is_some() {
            taken.rule = Some(ApprovalRule::Any);
        }
        return Cow::Owned(taken);
    }
    match acting_roles(def, n) {
        Cow::Borrowed(_) => Cow::Borrowed(def),
        Cow::Owned(roles) => {
            let mut changed = def.clone();
            changed.roles = roles;
            Cow::Owned(changed)
        }
    }
}

impl Decision<'_> {
    /// A missed deadline: overdue, then what the policy says — at the moment it occurs (R3.5).
    pub(super) fn breach(&mut self, key: &str, def: &ir::Node, due: DateTime<Utc>) -> Result<(), Refusal> {
        if !self.state.nodes.get(key).is_some_and(|n| n.overdue) {
            self.emit(Event::Overdue { node: key.into(), due_at: due });
        }
        let mut back_to = None;
        for a in &def.on_breach {
            match a {
                ir::BreachAction::Overdue => {}
                ir::BreachAction::Escalate { role } => {
                    self.emit(Event::Escalated { node: key.into(), role: role.clone(), due_at: due })
                }
                ir::BreachAction::Notify { role } => {
                    self.emit(Event::Notified { node: key.into(), role: role.clone(), due_at: due })
                }
                ir::BreachAction::Reassign { role } => {
                    self.emit(Event::Reassigned { node: key.into(), role: role.clone(), due_at: due })
                }
                ir::BreachAction::Reject => {
                    if def.kind == NodeKind::Step(StepKind::Approval) {
                        self.finish_approval(key, def, Outcome::Rejected)?;
                    } else {
                        self.emit(Event::Completed { node: key.into(), outcome: Outcome::Rejected });
                    }
                }
                ir::BreachAction::Return { node } => back_to = Some(node.clone()),
            }
        }
        if let Some(target) = back_to {
            let reason = format!("deadline missed: `{}` was due {}", def.name, due.to_rfc3339());
            self.reset_to(key, &target, &reason)?;
        }
        Ok(())
    }
}
