//! `on breach …` (issue 8, item 9): what happens at a missed deadline.
//!
//! - `overdue`, `escalate R`, `notify R` record and tell; they go with anything.
//! - At most one of `reject`, `return X`, `reassign R` ends the step's late state (E0307): each
//!   would undo the other.
//! - `return X` is the policy's own return (as `on rejected return`): X must come before the
//!   step (E0304, checked with the other returns in `structure`), and a filing (备案) or
//!   consultation (征求意见) step never returns, not even by letting its deadline pass (E0305):
//!   silence would then be a veto (R2.18).
//! - `reassign R` (提级办理) hands the step to R, who alone acts on it from then on; R must be
//!   someone new (E0308).

use super::{Checker, Unit};
use crate::ast::{self, Span};
use crate::diag::{Code, Diagnostic};
use crate::ir::{self, NodeKind, StepKind};

impl Checker {
    /// Lowers `on breach A, B, …` onto `node`.
    pub(super) fn breach(&mut self, node: &mut ir::Node, span: Span, actions: &[ast::BreachAction], unit: &Unit) {
        let mut ending: Option<(&'static str, Span)> = None;
        for a in actions {
            let (word, at) = match a {
                ast::BreachAction::Reject => ("reject", span),
                ast::BreachAction::Return(t) => ("return", t.span()),
                ast::BreachAction::Reassign(r) => ("reassign", r.span),
                _ => ("", span),
            };
            if !word.is_empty() {
                if let Some((first, _)) = ending {
                    self.err(
                        Diagnostic::error(
                            Code::E0307,
                            at,
                            format!("`{}` already says `{first}` at a breach; `{word}` contradicts it", node.name),
                        )
                        .with_label(format!("a second way to end the late step (`{word}`)"))
                        .with_help("keep one of `reject`, `return STEP`, `reassign ROLE`"),
                    );
                    continue;
                }
                ending = Some((word, at));
            }
            let lowered = match a {
                ast::BreachAction::Overdue => Some(ir::BreachAction::Overdue),
                ast::BreachAction::Reject => Some(ir::BreachAction::Reject),
                ast::BreachAction::Escalate(r) => {
                    self.role(r).then(|| ir::BreachAction::Escalate { role: r.name.clone() })
                }
                ast::BreachAction::Notify(r) => self.role(r).then(|| ir::BreachAction::Notify { role: r.name.clone() }),
                ast::BreachAction::Return(t) => self.breach_return(node, t, unit),
                ast::BreachAction::Reassign(r) => self.breach_reassign(node, r),
            };
            node.on_breach.extend(lowered);
        }
    }

    fn breach_return(&mut self, node: &ir::Node, target: &ast::StepPath, unit: &Unit) -> Option<ir::BreachAction> {
        if let NodeKind::Step(kind @ (StepKind::Filing | StepKind::Consultation)) = node.kind {
            let (what, word) =
                if kind == StepKind::Filing { ("filing", "备案") } else { ("consultation", "征求意见") };
            self.err(
                Diagnostic::error(
                    Code::E0305,
                    target.span(),
                    format!("a {what} step never sends the matter back, not even when it is late"),
                )
                .with_label(format!("`{}` is a {what} ({word})", node.name))
                .with_help(format!(
                    "letting the deadline pass would veto the decision (R2.18): use `escalate` or `notify`, or `reassign` the {what}"
                )),
            );
            return None;
        }
        let decl = self.step_path(target, unit)?;
        self.breach_spans.insert(node.id.clone(), target.span());
        Some(ir::BreachAction::Return { node: decl.id })
    }

    fn breach_reassign(&mut self, node: &ir::Node, role: &ast::Ident) -> Option<ir::BreachAction> {
        if !self.role(role) {
            return None;
        }
        self.breach_spans.insert(node.id.clone(), role.span);
        Some(ir::BreachAction::Reassign { role: role.name.clone() })
    }
}

/// Once every clause is lowered (`by` may come after `on breach`): a reassignment must hand the
/// step to someone new (E0308).
pub(super) fn check(c: &mut Checker) {
    let mut reports = Vec::new();
    for n in &c.out.nodes {
        for a in &n.on_breach {
            let ir::BreachAction::Reassign { role } = a else { continue };
            if n.roles.len() == 1 && n.roles[0] == *role {
                let span = c.breach_spans.get(&n.id).copied().unwrap_or_default();
                reports.push(
                    Diagnostic::error(
                        Code::E0308,
                        span,
                        format!("`{role}` already holds `{}` alone: reassigning it changes nothing", n.name),
                    )
                    .with_label("the role that missed the limit")
                    .with_help("name the body that takes the matter over (提级办理), e.g. the one it escalates to"),
                );
            }
        }
    }
    c.diags.extend(reports);
}
