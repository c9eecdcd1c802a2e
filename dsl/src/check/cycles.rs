//! Checks and lowering of what relates one instance to others: `recur` (R0.3, the next cycle),
//! `quota` (R3.7, a cap over one cycle's instances) and `requires completed` (R3.6, another
//! procedure's instance that must have completed first).

use chrono::NaiveDate;

use super::{Checker, Ctx, Scope};
use crate::ast::{self, Item, RecurAnchor, RecurEvery};
use crate::diag::{Code, Diagnostic};
use crate::ir::{self, Expr, RefKind, Type};

impl Checker {
    /// Lowers every `recur` and `quota` of the policy; runs after the nodes are lowered, since
    /// anchors and quota conditions name steps.
    pub(super) fn cycles(&mut self, p: &ast::Policy, scope: &Scope) {
        let unit = self.units.last().cloned().unwrap_or_default();
        for item in &p.items {
            match item {
                Item::Recur(r) => {
                    if let Some(c) = self.recur(r, &unit) {
                        self.out.cycles.push(c);
                    }
                }
                Item::Quota(q) => {
                    let id = format!("quota{}", self.out.quotas.len() + 1);
                    if let Some(q) = self.quota(q, id, scope, &unit) {
                        self.out.quotas.push(q);
                    }
                }
                _ => {}
            }
        }
        if !self.out.quotas.is_empty() && self.out.cycles.is_empty() {
            if let Some(Item::Quota(q)) = p.items.iter().find(|i| matches!(i, Item::Quota(_))) {
                self.err(
                    Diagnostic::error(
                        Code::E0208,
                        q.span,
                        "a `quota` counts the instances of one cycle, but this policy does not recur",
                    )
                    .with_label("no cycle to count in")
                    .with_help("add `recur monthly` (or another period) so the instances of one period form a cycle"),
                );
            }
        }
    }

    fn recur(&mut self, r: &ast::Recur, unit: &super::Unit) -> Option<ir::Cycle> {
        let every = match r.every {
            RecurEvery::Every { n, unit } => {
                if n == 0 {
                    self.err(
                        Diagnostic::error(Code::E0111, r.span, "a recurrence must be at least 1")
                            .with_label("`every 0`"),
                    );
                    return None;
                }
                ir::CycleEvery::Span { n, unit }
            }
            RecurEvery::Monthly => ir::CycleEvery::Monthly,
            RecurEvery::Quarterly => ir::CycleEvery::Quarterly,
            RecurEvery::HalfYearly => ir::CycleEvery::HalfYearly,
            RecurEvery::Yearly => ir::CycleEvery::Yearly,
        };
        let on_span = r.on_span.unwrap_or(r.span);
        let mut ok = true;
        for d in &r.on {
            let fits = match (r.every, d.month) {
                (RecurEvery::Every { .. }, _) => {
                    self.err(
                        Diagnostic::error(Code::E0109, on_span, "`on` chooses days of a calendar period")
                            .with_label("`every N …` counts from its anchor")
                            .with_help(
                                "use `monthly`, `quarterly`, `half-yearly` or `yearly` with `on`, or remove `on`",
                            ),
                    );
                    return None;
                }
                (RecurEvery::Yearly, Some(m)) => NaiveDate::from_ymd_opt(2000, m, d.day).is_some(),
                (RecurEvery::Yearly, None) => false,
                (_, Some(_)) => false,
                (_, None) => (1..=31).contains(&d.day),
            };
            if !fits {
                ok = false;
                let (label, help) = if r.every == RecurEvery::Yearly {
                    ("not a day of the year", "write the day of the year as `MM-DD`, e.g. `on 12-20`")
                } else {
                    ("not a day of the month", "write the day of the month as `day N`, N from 1 to 31")
                };
                self.err(
                    Diagnostic::error(Code::E0105, on_span, "a recurrence day that does not exist")
                        .with_label(label)
                        .with_help(help),
                );
            }
        }
        let anchor = match &r.from {
            None | Some(RecurAnchor::Start) => None,
            Some(RecurAnchor::End(name)) => Some(self.node_ref(name, unit, "")?.id),
        };
        let mut carry = Vec::new();
        for c in &r.carry {
            if self.out.params.iter().any(|p| p.id == c.name) {
                carry.push(c.name.clone());
            } else {
                ok = false;
                self.err(
                    Diagnostic::error(
                        Code::E0206,
                        c.span,
                        format!("`carry` names `{}`, which is not a parameter", c.name),
                    )
                    .with_label("no such parameter")
                    .with_help("the next cycle takes over parameters declared with `param`"),
                );
            }
        }
        let dated = match &r.dated {
            None => None,
            Some(d) => match self.out.params.iter().find(|p| p.id == d.name) {
                Some(p) if p.ty == Type::Date => Some(d.name.clone()),
                _ => {
                    ok = false;
                    self.err(
                        Diagnostic::error(
                            Code::E0206,
                            d.span,
                            format!("`dated` names `{}`, which is not a date parameter", d.name),
                        )
                        .with_label("needs a `param … : date`")
                        .with_help("the next cycle receives its due date in a date parameter"),
                    );
                    None
                }
            },
        };
        let by = match &r.by {
            None => None,
            Some(role) => self.role(role).then(|| role.name.clone()),
        };
        let fresh: Vec<String> = self
            .out
            .params
            .iter()
            .filter(|p| p.default.is_none() && !carry.contains(&p.id) && dated.as_ref() != Some(&p.id))
            .map(|p| p.id.clone())
            .collect();
        if !fresh.is_empty() && r.by.is_none() {
            ok = false;
            self.err(
                Diagnostic::error(
                    Code::E0207,
                    r.span,
                    format!("the next cycle needs `{}` given, and no role is named to start it", fresh.join("`, `")),
                )
                .with_label("who starts the next cycle?")
                .with_help("add `by ROLE` (the engine then opens a task for it), or `carry` the parameters over"),
            );
        }
        let on = r.on.iter().map(|d| ir::CycleDay { month: d.month, day: d.day }).collect();
        ok.then_some(ir::Cycle { every, on, anchor, carry, dated, by, fresh })
    }

    fn quota(&mut self, q: &ast::Quota, id: String, scope: &Scope, unit: &super::Unit) -> Option<ir::Quota> {
        let ctx = Ctx { unit: Some(unit) };
        let (condition, ty) = self.expr(&q.condition, scope, ctx)?;
        self.expect_type(&Type::Bool, &ty, q.condition.span, "a `quota` condition");
        let mut nodes = Vec::new();
        node_fields(&condition, &mut nodes);
        nodes.sort();
        nodes.dedup();
        let refers_to_params = refs_params(&condition);
        let node = match (nodes.as_slice(), refers_to_params) {
            ([one], false) => one.clone(),
            _ => {
                self.err(
                    Diagnostic::error(
                        Code::E0208,
                        q.condition.span,
                        "a `quota` condition must read the form of exactly one step",
                    )
                    .with_label("the rating this quota caps")
                    .with_help("write it over one step's field, e.g. `评定.等次 == \"优秀\"`"),
                );
                return None;
            }
        };
        let share = self.constant_value(&q.share, &Type::Decimal, scope, "a quota's share")?;
        let in_range = match &share {
            crate::value::Value::Number(r) => {
                *r >= num_rational::BigRational::from_integer(0.into())
                    && *r <= num_rational::BigRational::from_integer(1.into())
            }
            _ => false,
        };
        if !in_range {
            self.err(
                Diagnostic::error(Code::E0208, q.share.span, "a quota's share must lie between 0% and 100%")
                    .with_label("not a share of the cycle")
                    .with_help("write a percentage such as `10%`"),
            );
            return None;
        }
        Some(ir::Quota { id, node, condition, share, message: q.message.value.clone() })
    }

    /// `requires completed POLICY where PARAM == EXPR else "…"` on a step (R3.6).
    pub(super) fn prerequisite(
        &mut self,
        policy: &ast::Ident,
        param: &ast::Ident,
        value: &ast::Expr,
        message: &ast::Str,
        scope: &Scope,
        ctx: Ctx,
    ) -> Option<ir::Prerequisite> {
        let (expr, ty) = self.expr(value, scope, ctx)?;
        if !matches!(ty, Type::Text | Type::Int | Type::Date | Type::Decimal | Type::Bool) {
            self.err(
                Diagnostic::error(
                    Code::E0209,
                    value.span,
                    format!("`{}` is matched against a plain value, not `{ty}`", param.name),
                )
                .with_label("a list or record cannot name a matter")
                .with_help("compare the other procedure's parameter with a text, number or date"),
            );
            return None;
        }
        if message.value.trim().is_empty() {
            self.err(
                Diagnostic::error(Code::E0209, message.span, "a `requires` clause needs the words of its rule")
                    .with_label("empty message")
                    .with_help("say which procedure must have completed, in the words of the rule"),
            );
            return None;
        }
        Some(ir::Prerequisite {
            policy: policy.name.clone(),
            param: param.name.clone(),
            value: expr,
            message: message.value.clone(),
        })
    }
}

fn node_fields(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::NodeField { node, .. } => out.push(node.clone()),
        other => for_children(other, |c| node_fields(c, out)),
    }
}

fn refs_params(e: &Expr) -> bool {
    match e {
        Expr::Ref { kind: RefKind::Param, .. } => true,
        other => {
            let mut any = false;
            for_children(other, |c| any |= refs_params(c));
            any
        }
    }
}

fn for_children(e: &Expr, mut f: impl FnMut(&Expr)) {
    match e {
        Expr::Lit { .. } | Expr::Ref { .. } | Expr::NodeField { .. } | Expr::NodeTime { .. } => {}
        Expr::Field { of, .. } => f(of),
        Expr::List { items } => items.iter().for_each(f),
        Expr::Call { args, .. } => args.iter().for_each(f),
        Expr::Unary { arg, .. } => f(arg),
        Expr::Binary { lhs, rhs, .. } => {
            f(lhs);
            f(rhs);
        }
        Expr::If { cond, then, otherwise } => {
            f(cond);
            f(then);
            f(otherwise);
        }
        Expr::Match { scrutinee, arms } => {
            f(scrutinee);
            for a in arms {
                f(&a.value);
            }
        }
    }
}
