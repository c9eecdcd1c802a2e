//! Returns by hand, urging and the owner's limit (issue 8): the core's side of `may return`,
//! `urge by` and `owned`.
//!
//! - A return by hand (退回, `return_to`) is accepted only where the policy declares it for the
//!   step, the target and the acting role (F030): a filing body cannot force a new vote (R2.18),
//!   a community cannot send an approved matter back (R3.3). The automatic returns
//!   (`on rejected return`, `on objection return`) are the policy's own and stay.
//! - Urging (催办) is for the roles the policy names (`urge by`) and those a breach escalated the
//!   step to (F031).
//! - A return out of an `owned` step (首办负责制) is passing the matter on (推诿, R3.5): it is
//!   recorded (`PassedOn`) and escalated and notified at that instant as the step's `on breach`
//!   says, and the owner's limit keeps running: the step keeps its deadline (`kept_limit`)
//!   through the reset, the breach fires at the original instant even while the step waits, and
//!   when the step reopens its deadline is the original one.

use chrono::{DateTime, Utc};
use civicflow_dsl::ir;

use super::{Action, Actor, Decision, Event, NodeState, NodeStatus, Refusal};

/// Whether `acting` may return or urge `key` (other actions pass). Called from `act` right after
/// entitlement, so a refusal here is a 403 and records nothing.
pub(super) fn allowed(
    key: &str,
    def: &ir::Node,
    n: &NodeState,
    acting: &Actor,
    action: &Action,
) -> Result<(), Refusal> {
    match action {
        Action::ReturnTo { target, .. } => {
            let ok = def.returns.iter().any(|r| r.targets.contains(target) && r.roles.contains(&acting.role));
            if ok {
                return Ok(());
            }
            let declared = def
                .returns
                .iter()
                .map(|r| format!("a return to {} by {}", quoted(&r.targets), quoted(&r.roles)))
                .collect();
            Err(Refusal::ReturnNotDeclared {
                node: key.into(),
                target: target.clone(),
                role: acting.role.clone(),
                declared,
            })
        }
        Action::Urge { .. } => {
            if def.urge_by.contains(&acting.role) || n.escalated_to.contains(&acting.role) {
                return Ok(());
            }
            let mut allowed: Vec<String> = def.urge_by.clone();
            for r in &n.escalated_to {
                if !allowed.contains(r) {
                    allowed.push(r.clone());
                }
            }
            Err(Refusal::UrgeNotAllowed { node: key.into(), role: acting.role.clone(), allowed })
        }
        Action::AddApprover { .. } | Action::RemoveApprover { .. } => {
            let allowed = def.approvers.as_ref().map_or_else(Vec::new, |a| a.roles.clone());
            if allowed.contains(&acting.role) {
                return Ok(());
            }
            Err(Refusal::ApproversNotAllowed { node: key.into(), role: acting.role.clone(), allowed })
        }
        Action::Transfer { .. } => {
            let allowed = def.transfer.as_ref().map_or_else(Vec::new, |t| t.roles.clone());
            if allowed.contains(&acting.role) {
                return Ok(());
            }
            Err(Refusal::TransferNotAllowed { node: key.into(), role: acting.role.clone(), allowed })
        }
        Action::CopyTo { .. } => {
            if super::copies::may_copy(def, &acting.role) {
                return Ok(());
            }
            Err(Refusal::CopyNotAllowed { node: key.into(), role: acting.role.clone(), allowed: def.copy_by.clone() })
        }
        Action::ApproveExtension { .. } | Action::RejectExtension { .. } => {
            let allowed = def.extend.as_ref().map_or_else(Vec::new, |e| e.approved_by.clone());
            if allowed.contains(&acting.role) {
                return Ok(());
            }
            Err(Refusal::ExtensionNotAllowed { node: key.into(), role: acting.role.clone(), allowed })
        }
        Action::Extend { .. } => {
            let allowed = def.extend.as_ref().map_or_else(Vec::new, |e| e.roles.clone());
            if allowed.contains(&acting.role) {
                return Ok(());
            }
            Err(Refusal::ExtensionNotAllowed { node: key.into(), role: acting.role.clone(), allowed })
        }
        _ => Ok(()),
    }
}

/// Roles that may urge the step now: those named with `urge by` and those it was escalated to.
pub fn urgers(def: &ir::Node, n: &NodeState) -> Vec<String> {
    let mut out = def.urge_by.clone();
    for r in &n.escalated_to {
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    out
}

/// What `role` may do on an open step (the inbox shows it): the step's own work if the role is
/// in `by`, a return where one is declared for it, and urging if the policy names it for that or
/// the step was escalated to it (督办: "urge now").
pub fn may_do(def: &ir::Node, n: &NodeState, role: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    let acting = super::breach::acting_roles(def, n);
    if let (true, ir::NodeKind::Step(kind)) = (acting.iter().any(|r| r == role), def.kind) {
        out.extend_from_slice(super::rules::kind_actions(kind));
    }
    if def.returns.iter().any(|r| r.roles.iter().any(|x| x == role)) {
        out.push("return_to");
    }
    if urgers(def, n).iter().any(|r| r == role) {
        out.push("urge");
    }
    if def.extend.as_ref().is_some_and(|e| e.roles.iter().any(|r| r == role)) {
        out.push("extend");
    }
    let approves = def.extend.as_ref().is_some_and(|e| e.approved_by.iter().any(|r| r == role));
    if approves && n.extension_asked.is_some() {
        out.extend(["approve_extension", "reject_extension"]);
    }
    if def.transfer.as_ref().is_some_and(|t| t.roles.iter().any(|r| r == role)) {
        out.push("transfer");
    }
    if def.approvers.as_ref().is_some_and(|a| a.roles.iter().any(|r| r == role)) {
        out.extend(["add_approver", "remove_approver"]);
    }
    if super::copies::may_copy(def, role) {
        out.push("copy_to");
    }
    out
}

/// What a reset keeps of a step whose owner's limit runs on (R3.5): the limit, whether it was
/// breached, the reminders sent for it, whom it was escalated to and how much of its extension
/// (延期, issue 11.1) was used.
pub(super) fn carry_limit(old: &NodeState, new: &mut NodeState) {
    if old.kept_limit.is_some() {
        new.kept_limit = old.kept_limit;
        new.overdue = old.overdue;
        new.reminders_sent = old.reminders_sent;
        new.escalated_to = old.escalated_to.clone();
        new.reassigned_to = old.reassigned_to.clone();
        // The limit kept may have been extended: what is left of the extension goes with it.
        new.extended = old.extended;
    }
}

impl Decision<'_> {
    /// A return out of an owned step: 推诿, recorded and escalated now; the limit runs on (R3.5).
    pub(super) fn pass_on(&mut self, from: &str, target: &str) {
        let Some(n) = self.state.nodes.get(from) else { return };
        let Some(def) = self.ctx.program.node(&n.def) else { return };
        if !def.owned {
            return;
        }
        let due_at = n.due_at;
        let on_breach = def.on_breach.clone();
        self.emit(Event::PassedOn { node: from.into(), to: target.into(), due_at });
        let at = due_at.unwrap_or(self.now);
        self.escalate(from, &on_breach, at, false);
    }

    /// The owner's limit passed while the step waited after being passed on: overdue, escalated
    /// and notified at that instant (a step that is not open cannot be rejected).
    pub(super) fn breach_kept_limit(&mut self, key: &str, at: DateTime<Utc>) {
        let Some(n) = self.state.nodes.get(key) else { return };
        if n.status != NodeStatus::Waiting || n.kept_limit != Some(at) || n.overdue || self.now < at {
            return;
        }
        let Some(def) = self.ctx.program.node(&n.def) else { return };
        let on_breach = def.on_breach.clone();
        self.emit(Event::Overdue { node: key.into(), due_at: at });
        self.escalate(key, &on_breach, at, true);
    }

    /// Escalates and notifies as `on breach` says; at the breach itself (`at_breach`) a waiting
    /// step is also taken over as `reassign` says (it then reopens in the new role's hands). A
    /// waiting step cannot be rejected or returned.
    fn escalate(&mut self, key: &str, on_breach: &[ir::BreachAction], due_at: DateTime<Utc>, at_breach: bool) {
        for a in on_breach {
            match a {
                ir::BreachAction::Escalate { role } => {
                    self.emit(Event::Escalated { node: key.into(), role: role.clone(), due_at })
                }
                ir::BreachAction::Notify { role } => {
                    self.emit(Event::Notified { node: key.into(), role: role.clone(), due_at })
                }
                ir::BreachAction::Reassign { role } if at_breach => {
                    self.emit(Event::Reassigned { node: key.into(), role: role.clone(), due_at })
                }
                ir::BreachAction::Overdue
                | ir::BreachAction::Reject
                | ir::BreachAction::Return { .. }
                | ir::BreachAction::Reassign { .. } => {}
            }
        }
    }
}

fn quoted(items: &[String]) -> String {
    items.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
}
