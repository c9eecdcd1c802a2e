//! Parameter ranges (`param 党员人数: int >= 0`, E0120, E0121) and durations whose amount is a
//! parameter or value (`due 办结时限 workdays`, `min 公示天数 days`, E0122).
//!
//! Both are checked again when an instance starts: a value outside its range is refused (F011,
//! the bound named), and a negative duration amount is refused (F045).

use num_rational::BigRational;

use super::{is_number, Checker, Ctx, Scope, Unit};
use crate::ast;
use crate::diag::{Code, Diagnostic};
use crate::ir::{self, Expr, RefKind, Type};
use crate::value::{parse_rational, Value};

impl Checker {
    /// Lowers a parameter's range; checks it fits the type and holds the default.
    pub(super) fn param_range(
        &mut self,
        p: &ast::Param,
        ty: &Type,
        default: Option<&Value>,
        in_procedure: bool,
    ) -> Option<ir::Range> {
        let r = p.range.as_ref()?;
        if in_procedure {
            self.err(
                Diagnostic::error(Code::E0120, r.span, "a procedure parameter cannot have a range")
                    .with_label("bound by the call, not when the instance starts")
                    .with_help("put the range on the policy parameter the call passes in"),
            );
            return None;
        }
        if !is_number(ty) {
            self.err(
                Diagnostic::error(
                    Code::E0120,
                    r.span,
                    format!("a range applies to a number, but `{}` is `{ty}`", p.name.name),
                )
                .with_label("not a number parameter")
                .with_help("ranges bound `int` and `decimal` parameters"),
            );
            return None;
        }
        let num = |s: &Option<String>| s.as_deref().and_then(parse_rational);
        let (low, high) = (num(&r.low), num(&r.high));
        if *ty == Type::Int && [&low, &high].into_iter().flatten().any(|b| !b.is_integer()) {
            self.err(
                Diagnostic::error(
                    Code::E0120,
                    r.span,
                    format!("`{}` is an `int`, but its range has a fraction", p.name.name),
                )
                .with_label("not a whole number")
                .with_help("write the bounds as whole numbers"),
            );
            return None;
        }
        if let (Some(l), Some(h)) = (&low, &high) {
            if l > h {
                self.err(
                    Diagnostic::error(Code::E0120, r.span, "this range is empty")
                        .with_label("its low end is above its high end")
                        .with_help("write the smaller number first: `in LOW..=HIGH`"),
                );
                return None;
            }
        }
        let range = ir::Range { low: low.map(Value::Number), high: high.map(Value::Number) };
        if let Some(d) = default {
            if let Some(problem) = range.violation(d) {
                let dspan = p.default.as_ref().map_or(p.span, |e| e.span);
                self.err(
                    Diagnostic::error(Code::E0121, dspan, format!("the default of `{}` {problem}", p.name.name))
                        .with_label(format!("`{d}` is outside `{range}`"))
                        .with_secondary(r.span, "the range")
                        .with_help("change the default or the range"),
                );
            }
        }
        Some(range)
    }

    /// Lowers the amount of `due AMOUNT UNIT` / `min AMOUNT UNIT`: an `int` of parameters and
    /// values, so it is known (and checked non-negative) when the instance starts.
    pub(super) fn amount(&mut self, e: &ast::Expr, scope: &Scope, unit: &Unit) -> Option<Expr> {
        let (expr, ty) = self.expr(e, scope, Ctx { unit: Some(unit) })?;
        if ty != Type::Int {
            self.err(
                Diagnostic::error(
                    Code::E0122,
                    e.span,
                    format!("a duration's amount must be an `int`, but this is `{ty}`"),
                )
                .with_label(format!("`{ty}` here"))
                .with_help("a count of days: round a fraction with `floor(…)` or `ceil(…)`"),
            );
            return None;
        }
        if !known_at_start(&expr) {
            self.err(
                Diagnostic::error(Code::E0122, e.span, "a duration's amount must be known when the instance starts")
                    .with_label("depends on something recorded later")
                    .with_help("use parameters and values (`let`) only"),
            );
            return None;
        }
        if self.is_constant(&expr) {
            let env = super::ConstEnv { values: &self.constants };
            if let Ok(Value::Number(n)) = crate::eval::eval(&expr, &env) {
                if n < BigRational::from_integer(0.into()) {
                    self.err(
                        Diagnostic::error(Code::E0122, e.span, "a duration's amount cannot be negative")
                            .with_label(format!("`{}`", crate::value::format_rational(&n)))
                            .with_help("a period counts forward from when it starts"),
                    );
                    return None;
                }
            }
        }
        Some(expr)
    }
}

/// Whether an expression reads only parameters and values (and literals).
pub(super) fn known_at_start(e: &Expr) -> bool {
    match e {
        Expr::Lit { .. } => true,
        Expr::Ref { kind, .. } => matches!(kind, RefKind::Param | RefKind::Value),
        Expr::NodeField { .. } | Expr::NodeTime { .. } => false,
        Expr::Field { of, .. } => known_at_start(of),
        Expr::List { items } => items.iter().all(known_at_start),
        Expr::Call { args, .. } => args.iter().all(known_at_start),
        Expr::Unary { arg, .. } => known_at_start(arg),
        Expr::Binary { lhs, rhs, .. } => known_at_start(lhs) && known_at_start(rhs),
        Expr::If { cond, then, otherwise } => known_at_start(cond) && known_at_start(then) && known_at_start(otherwise),
        Expr::Match { scrutinee, arms } => known_at_start(scrutinee) && arms.iter().all(|a| known_at_start(&a.value)),
    }
}
