//! Returns by hand, urging and the owner's limit (issue 8).
//!
//! - `may return X, Y by R, S` (退回): a step may be sent back by hand only where the policy says
//!   so, to the named earlier steps, by the named roles. Filing (备案) and consultation (征求意见)
//!   steps never return (E0305): they cannot veto. A declared return that would let a body veto
//!   what it only files is refused too (E0306, the rule is on [`check`]).
//! - `urge by R` (催办): the roles that may urge the step (the roles a breach escalates it to may
//!   too, at run time).
//! - `owned` (首办负责制): the step's `due` is the owner's limit; a return out of it is passing the
//!   matter on (推诿) and does not stop the limit (R3.5). It needs a `due` (E0110).

use std::collections::{BTreeSet, HashMap};

use super::structure::predecessors;
use super::{Checker, Unit};
use crate::ast::{Ident, Span, StepPath};
use crate::diag::{Code, Diagnostic};
use crate::ir::{self, NodeKind, StepKind};

/// One (target, role) pair of a `may return` clause, with where it is written.
#[derive(Clone, Debug)]
pub(crate) struct Declared {
    node: String,
    target: String,
    role: String,
    target_span: Span,
    role_span: Span,
}

impl Checker {
    /// Lowers `may return X, Y by R, S` onto `node`.
    pub(super) fn may_return(
        &mut self,
        node: &mut ir::Node,
        span: Span,
        targets: &[StepPath],
        by: &[Ident],
        unit: &Unit,
    ) {
        if let NodeKind::Step(kind @ (StepKind::Filing | StepKind::Consultation)) = node.kind {
            let (what, word) =
                if kind == StepKind::Filing { ("filing", "备案") } else { ("consultation", "征求意见") };
            self.err(
                Diagnostic::error(Code::E0305, span, format!("a {what} step never sends the matter back"))
                    .with_label(format!("`{}` is a {what} ({word})", node.name))
                    .with_help(format!(
                        "a {what} records, it cannot veto (R2.18); let the body that decides declare the return"
                    )),
            );
            return;
        }
        let mut rule = ir::ReturnRule { targets: Vec::new(), roles: Vec::new() };
        let mut resolved = Vec::new();
        for t in targets {
            if let Some(d) = self.step_path(t, unit) {
                if !rule.targets.contains(&d.id) {
                    rule.targets.push(d.id.clone());
                    resolved.push((d.id.clone(), t.span()));
                }
            }
        }
        for r in by {
            if self.role(r) && !rule.roles.contains(&r.name) {
                rule.roles.push(r.name.clone());
                for (target, target_span) in &resolved {
                    self.declared_returns.push(Declared {
                        node: node.id.clone(),
                        target: target.clone(),
                        role: r.name.clone(),
                        target_span: *target_span,
                        role_span: r.span,
                    });
                }
            }
        }
        if !rule.targets.is_empty() && !rule.roles.is_empty() {
            node.returns.push(rule);
        }
    }

    /// Lowers `urge by R, S`.
    pub(super) fn urge_by(&mut self, node: &mut ir::Node, roles: &[Ident]) {
        for r in roles {
            if self.role(r) && !node.urge_by.contains(&r.name) {
                node.urge_by.push(r.name.clone());
            }
        }
    }

    /// Lowers `copy by R, S` (抄送, issue 11.2).
    pub(super) fn copy_by(&mut self, node: &mut ir::Node, roles: &[Ident]) {
        for r in roles {
            if self.role(r) && !node.copy_by.contains(&r.name) {
                node.copy_by.push(r.name.clone());
            }
        }
    }

    /// Lowers `extend by R max N` (issue 11.1): the roles must be declared, the step must have a
    /// deadline to extend, and `max` must allow something.
    pub(super) fn extend(
        &mut self,
        node: &mut ir::Node,
        span: Span,
        roles: &[Ident],
        max: &crate::ast::Duration,
        approved_by: &[Ident],
        has_due: bool,
    ) {
        if !has_due {
            self.err(
                Diagnostic::error(Code::E0110, span, format!("`{}` may be extended but has no deadline", node.name))
                    .with_label("`extend` moves the step's `due`")
                    .with_help("give the deadline with `due`, e.g. `due 15 workdays`"),
            );
        }
        if max.amount == 0 {
            self.err(
                Diagnostic::error(Code::E0110, max.span, "an extension of at most 0 allows none")
                    .with_label("at most this much in all")
                    .with_help("give the most the deadline may move, e.g. `max 10 workdays`"),
            );
        }
        let mut kept = Vec::new();
        for r in roles {
            if self.role(r) && !kept.contains(&r.name) {
                kept.push(r.name.clone());
            }
        }
        let mut approvers = Vec::new();
        for r in approved_by {
            if self.role(r) && !approvers.contains(&r.name) {
                approvers.push(r.name.clone());
            }
        }
        node.extend = Some(ir::Extension { roles: kept, max: super::clauses::span_of(max), approved_by: approvers });
    }

    /// Lowers `transfer by R [restart]` (issue 11.2): the roles must be declared, and `restart`
    /// needs a limit to start again; that the step acts in a bound role is checked with the
    /// bindings (`check::binding`).
    pub(super) fn transfer(&mut self, node: &mut ir::Node, span: Span, roles: &[Ident], restart: bool, has_due: bool) {
        if restart && !has_due {
            self.err(
                Diagnostic::error(
                    Code::E0110,
                    span,
                    format!("`{}` restarts its limit on a transfer but has none", node.name),
                )
                .with_label("`restart` starts the step's `due` again")
                .with_help("give the limit with `due`, or keep it by leaving out `restart`"),
            );
        }
        let mut kept = Vec::new();
        for r in roles {
            if self.role(r) && !kept.contains(&r.name) {
                kept.push(r.name.clone());
            }
        }
        node.transfer = Some(ir::Transfer { roles: kept, restart });
        self.transfer_spans.insert(node.id.clone(), span);
    }

    /// Lowers `owned`; the limit it keeps is the step's `due`.
    pub(super) fn owned(&mut self, node: &mut ir::Node, span: Span, has_due: bool) {
        if !has_due {
            self.err(
                Diagnostic::error(Code::E0110, span, format!("`{}` is owned but has no limit", node.name))
                    .with_label("`owned` keeps the step's `due` running through a return")
                    .with_help("give the owner's limit with `due`, e.g. `due 15 workdays`"),
            );
        }
        node.owned = true;
    }
}

/// The structural rules of declared returns, once every node is lowered.
///
/// - E0304: the target must come before the step (it waits for it, directly or through others).
/// - E0306, a declared return that would let a body veto. Write `reset(T)` for what the return
///   resets: `T` and every node that waits for it (or for a phase holding it), transitively —
///   exactly what the engine reopens. `may return T by R` on step `S` is reported when
///   1. `R` acts on no step of `reset(T)` that is neither a filing (备案) nor a consultation
///      (征求意见): it would undo work in which it decides nothing; or
///   2. `reset(T)` holds a vote or approval `D` that `S` waits for, `R` takes no part in `D`, and
///      `R` files `D`'s result (a filing step of `R` waits for `D`): the filing body would force
///      the decision to be taken again (R2.18).
pub(super) fn check(c: &mut Checker) {
    if c.declared_returns.is_empty() {
        return;
    }
    let nodes = &c.out.nodes;
    let by_id: HashMap<&str, &ir::Node> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
    for n in nodes {
        if let Some(p) = &n.parent {
            children.entry(p.as_str()).or_default().push(n.id.as_str());
        }
        for d in &n.after {
            dependents.entry(d.node.as_str()).or_default().push(n.id.as_str());
        }
    }
    let mut reports = Vec::new();
    for d in &c.declared_returns {
        let Some(n) = by_id.get(d.node.as_str()).copied() else { continue };
        let before = predecessors(n, &by_id, &children);
        if d.target == d.node {
            reports.push(
                Diagnostic::error(Code::E0304, d.target_span, format!("`{}` returns to itself", n.name))
                    .with_label("not an earlier step")
                    .with_help("return to the step whose work must be redone"),
            );
            continue;
        }
        if !before.contains(d.target.as_str()) {
            reports.push(
                Diagnostic::error(
                    Code::E0304,
                    d.target_span,
                    format!("`{}` may return to `{}`, which does not come before it", n.name, d.target),
                )
                .with_label("not an earlier step")
                .with_help(format!(
                    "`{}` must be among the steps `{}` waits for, directly or through others",
                    d.target, n.name
                )),
            );
            continue;
        }
        let reset = reset_set(&d.target, &by_id, &children, &dependents);
        let holds = |x: &ir::Node| matches!(x.kind, NodeKind::Step(_)) && x.roles.contains(&d.role);
        let decides = reset
            .iter()
            .filter_map(|k| by_id.get(k.as_str()))
            .any(|x| holds(x) && !matches!(x.kind, NodeKind::Step(StepKind::Filing | StepKind::Consultation)));
        if !decides {
            let files: Vec<&str> = reset
                .iter()
                .filter_map(|k| by_id.get(k.as_str()))
                .filter(|x| holds(x))
                .map(|x| x.name.as_str())
                .collect();
            let label = if files.is_empty() {
                format!("`{}` acts on none of the steps this return reopens", d.role)
            } else {
                format!("`{}` only files or gives an opinion there ({})", d.role, quoted(&files))
            };
            reports.push(
                Diagnostic::error(
                    Code::E0306,
                    d.role_span,
                    format!("`{}` would veto through a return of `{}` to `{}`", d.role, n.name, d.target),
                )
                .with_label(label)
                .with_help("a return is declared for a role that decides among the steps it reopens (R2.18)"),
            );
            continue;
        }
        for k in &reset {
            let Some(dec) = by_id.get(k.as_str()).copied() else { continue };
            let is_decision = matches!(dec.kind, NodeKind::Step(StepKind::Vote | StepKind::Approval));
            if dec.id == n.id || !is_decision || dec.roles.contains(&d.role) || !before.contains(dec.id.as_str()) {
                continue;
            }
            let filing = nodes.iter().find(|f| {
                f.kind == NodeKind::Step(StepKind::Filing)
                    && f.roles.contains(&d.role)
                    && predecessors(f, &by_id, &children).contains(dec.id.as_str())
            });
            if let Some(f) = filing {
                reports.push(
                    Diagnostic::error(
                        Code::E0306,
                        d.role_span,
                        format!("`{}` would veto `{}` through a return of `{}` to `{}`", d.role, dec.name, n.name, d.target),
                    )
                    .with_label(format!("`{}` only files `{}`'s result (`{}`)", d.role, dec.name, f.name))
                    .with_help("a filing (备案) cannot force a decision to be taken again (R2.18): remove this role from the return"),
                );
                break;
            }
        }
    }
    c.diags.extend(reports);
}

/// What the engine resets when it returns to `target`: the target and everything that waits
/// for it or for a phase holding it, transitively (with the steps inside such nodes).
fn reset_set(
    target: &str,
    by_id: &HashMap<&str, &ir::Node>,
    children: &HashMap<&str, Vec<&str>>,
    dependents: &HashMap<&str, Vec<&str>>,
) -> BTreeSet<String> {
    let mut ancestors = Vec::new();
    let mut cur = by_id.get(target).and_then(|n| n.parent.as_deref());
    while let Some(p) = cur {
        ancestors.push(p);
        cur = by_id.get(p).and_then(|n| n.parent.as_deref());
    }
    let mut out: BTreeSet<String> = BTreeSet::new();
    out.insert(target.to_string());
    let mut queue: Vec<&str> = vec![target];
    queue.extend(ancestors.iter().copied());
    while let Some(x) = queue.pop() {
        for d in dependents.get(x).into_iter().flatten() {
            if out.insert(d.to_string()) {
                queue.push(d);
            }
        }
        if !ancestors.contains(&x) {
            for ch in children.get(x).into_iter().flatten() {
                if out.insert(ch.to_string()) {
                    queue.push(ch);
                }
            }
        }
    }
    out
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}
