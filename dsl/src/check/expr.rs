//! Expressions: name resolution, typing and lowering of `ast::Expr` (E0101 names, E02xx types),
//! with dates, function calls and decision tables (`match`: overlap and coverage, E0204).

use super::*;

impl Checker {
    pub(super) fn expr(&mut self, e: &ast::Expr, scope: &Scope, ctx: Ctx) -> Option<(Expr, Type)> {
        self.expr_expecting(e, scope, ctx, None)
    }

    pub(super) fn expr_expecting(
        &mut self,
        e: &ast::Expr,
        scope: &Scope,
        ctx: Ctx,
        expected: Option<&Type>,
    ) -> Option<(Expr, Type)> {
        use ast::ExprKind as K;
        let lit = |value: Value, ty: Type| Some((Expr::Lit { value }, ty));
        match &e.kind {
            K::Int(digits) => match digits.parse::<BigInt>() {
                Ok(n) => lit(Value::Number(BigRational::from_integer(n)), Type::Int),
                Err(_) => None,
            },
            K::Decimal(text) => parse_rational(text).and_then(|r| lit(Value::Number(r), Type::Decimal)),
            K::Percent(text) => parse_rational(text)
                .and_then(|r| lit(Value::Number(r / BigRational::from_integer(100.into())), Type::Decimal)),
            K::Str(s) => lit(Value::Text(s.value.clone()), Type::Text),
            K::Bool(b) => lit(Value::Bool(*b), Type::Bool),
            K::Date(text) => self.date(text, e.span).and_then(|d| lit(Value::Date(d), Type::Date)),
            K::Duration(d) => lit(Value::Duration(span_of(d)), Type::Duration),
            K::Paren(inner) => self.expr_expecting(inner, scope, ctx, expected),
            K::List(items) => {
                let want_elem = match expected {
                    Some(Type::List { of }) => Some(of.as_ref().clone()),
                    _ => None,
                };
                let mut lowered = Vec::new();
                let mut elem: Option<Type> = want_elem.clone();
                let mut ok = true;
                for item in items {
                    match self.expr_expecting(item, scope, ctx, want_elem.as_ref()) {
                        Some((x, t)) => {
                            match &elem {
                                None => elem = Some(t),
                                Some(prev) => match unify(prev, &t) {
                                    Some(u) => elem = Some(u),
                                    None => {
                                        self.err(
                                            Diagnostic::error(
                                                Code::E0201,
                                                item.span,
                                                format!("a list of `{prev}` cannot hold `{t}`"),
                                            )
                                            .with_label(format!("`{t}` here")),
                                        );
                                        ok = false;
                                    }
                                },
                            }
                            lowered.push(x);
                        }
                        None => ok = false,
                    }
                }
                let Some(elem) = elem else {
                    self.err(
                        Diagnostic::error(Code::E0201, e.span, "cannot tell the type of an empty list here")
                            .with_label("empty list")
                            .with_help("declare the type where the list is used, e.g. `param x: list<text> = []`"),
                    );
                    return None;
                };
                ok.then(|| (Expr::List { items: lowered }, Type::List { of: Box::new(elem) }))
            }
            K::Name(name) => match scope.get(&name.name) {
                Some(b) if b.kind == RefKind::Value && self.inline.contains_key(&b.id) => {
                    self.inline.get(&b.id).map(|e| (e.clone(), b.ty.clone()))
                }
                Some(b) => Some((Expr::Ref { kind: b.kind, id: b.id.clone() }, b.ty.clone())),
                None => {
                    let names = scope.names();
                    let mut d = Diagnostic::error(Code::E0104, name.span, format!("no value named `{}`", name.name))
                        .with_label("unknown name");
                    if ctx.unit.is_some_and(|u| u.contains_key(&name.name)) {
                        d = d.with_help(format!(
                            "`{0}` is a step; its times are `start({0})` and `end({0})`",
                            name.name
                        ));
                    } else if let Some(s) = suggest(&name.name, names.iter().map(String::as_str)) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    } else {
                        d = d.with_help(format!(
                            "declare it with `param {}: TYPE` or `let {}: TYPE = …`",
                            name.name, name.name
                        ));
                    }
                    self.err(d);
                    None
                }
            },
            K::Field(of, field) => {
                // `CALL.STEP.field`: a field a step inside a called procedure recorded.
                if let (Some(parts), Some(unit)) = (paths::dotted(of), ctx.unit) {
                    if parts.len() >= 2 && scope.get(&parts[0].name).is_none() && unit.contains_key(&parts[0].name) {
                        let decl = self.path_ref(parts[0], &parts[1..], unit)?;
                        return match decl.form.iter().find(|(n, _)| *n == field.name) {
                            Some((_, ty)) => {
                                Some((Expr::NodeField { node: decl.id.clone(), field: field.name.clone() }, ty.clone()))
                            }
                            None => {
                                let mut d = Diagnostic::error(
                                    Code::E0104,
                                    field.span,
                                    format!("step `{}` has no form field `{}`", decl.id, field.name),
                                )
                                .with_label("unknown field");
                                if let Some(s) = suggest(&field.name, decl.form.iter().map(|(n, _)| n.as_str())) {
                                    d = d.with_help(format!("did you mean `{s}`?"));
                                }
                                self.err(d);
                                None
                            }
                        };
                    }
                }
                // `STEP.field`: a value another step recorded in its form.
                if let ast::ExprKind::Name(step) = &of.kind {
                    if scope.get(&step.name).is_none() {
                        if let Some(decl) = ctx.unit.and_then(|u| u.get(&step.name)) {
                            return match decl.form.iter().find(|(n, _)| *n == field.name) {
                                Some((_, ty)) => Some((
                                    Expr::NodeField { node: decl.id.clone(), field: field.name.clone() },
                                    ty.clone(),
                                )),
                                None => {
                                    let mut d = Diagnostic::error(
                                        Code::E0104,
                                        field.span,
                                        format!("step `{}` has no form field `{}`", step.name, field.name),
                                    )
                                    .with_label("unknown field");
                                    d = match suggest(&field.name, decl.form.iter().map(|(n, _)| n.as_str())) {
                                        Some(s) => d.with_help(format!("did you mean `{s}`?")),
                                        None => d.with_help(format!("declare it in the `form` of `{}`", step.name)),
                                    };
                                    self.err(d);
                                    None
                                }
                            };
                        }
                    }
                }
                let (x, t) = self.expr(of, scope, ctx)?;
                match &t {
                    Type::Record { fields } => match fields.iter().find(|(n, _)| *n == field.name) {
                        Some((_, ft)) => Some((Expr::Field { of: Box::new(x), field: field.name.clone() }, ft.clone())),
                        None => {
                            let mut d = Diagnostic::error(
                                Code::E0104,
                                field.span,
                                format!("`{t}` has no field `{}`", field.name),
                            )
                            .with_label("unknown field");
                            if let Some(s) = suggest(&field.name, fields.iter().map(|(n, _)| n.as_str())) {
                                d = d.with_help(format!("did you mean `{s}`?"));
                            }
                            self.err(d);
                            None
                        }
                    },
                    other => {
                        self.err(
                            Diagnostic::error(
                                Code::E0201,
                                field.span,
                                format!("`.{}` on `{other}`, which has no fields", field.name),
                            )
                            .with_label("not a record"),
                        );
                        None
                    }
                }
            }
            K::Call(name, args) => self.call_expr(e, name, args, scope, ctx),
            K::Unary(op, arg) => {
                let (x, t) = self.expr(arg, scope, ctx)?;
                let ok = match op {
                    ast::UnOp::Not => t == Type::Bool,
                    ast::UnOp::Neg => is_number(&t),
                };
                if !ok {
                    let want = if *op == ast::UnOp::Not { "`bool`" } else { "a number" };
                    self.err(
                        Diagnostic::error(Code::E0201, arg.span, format!("expected {want}, found `{t}`"))
                            .with_label(format!("`{t}` here")),
                    );
                    return None;
                }
                Some((Expr::Unary { op: *op, arg: Box::new(x) }, t))
            }
            K::Binary(op, l, r) => {
                let left = self.expr(l, scope, ctx);
                let right = self.expr(r, scope, ctx);
                let ((lx, lt), (rx, rt)) = (left?, right?);
                let ty = binary_type(*op, &lt, &rt);
                match ty {
                    Some(ty) => Some((Expr::Binary { op: *op, lhs: Box::new(lx), rhs: Box::new(rx) }, ty)),
                    None => {
                        let mut d = Diagnostic::error(
                            Code::E0201,
                            e.span,
                            format!("`{}` does not apply to `{lt}` and `{rt}`", op.symbol()),
                        )
                        .with_label(format!("`{lt}` {} `{rt}`", op.symbol()));
                        if lt == Type::Date && rt == Type::Date && *op == ast::BinOp::Sub {
                            d = d.with_help("compare dates directly, or add a duration: `start(X) + 10 days`");
                        } else if matches!(op, ast::BinOp::And | ast::BinOp::Or) {
                            d = d.with_help("both sides of `and` / `or` must be conditions");
                        }
                        self.err(d);
                        None
                    }
                }
            }
            K::If { cond, then, otherwise } => {
                let c = self.expr(cond, scope, ctx);
                let a = self.expr_expecting(then, scope, ctx, expected);
                let b = self.expr_expecting(otherwise, scope, ctx, expected);
                let ((cx, ct), (ax, at), (bx, bt)) = (c?, a?, b?);
                if ct != Type::Bool {
                    self.err(
                        Diagnostic::error(Code::E0201, cond.span, format!("`if` needs a condition, found `{ct}`"))
                            .with_label(format!("`{ct}` here")),
                    );
                    return None;
                }
                let Some(ty) = unify(&at, &bt) else {
                    self.err(
                        Diagnostic::error(
                            Code::E0201,
                            otherwise.span,
                            format!("the branches of `if` differ: `{at}` and `{bt}`"),
                        )
                        .with_label(format!("`{bt}` here"))
                        .with_secondary(then.span, format!("`{at}` here")),
                    );
                    return None;
                };
                Some((Expr::If { cond: Box::new(cx), then: Box::new(ax), otherwise: Box::new(bx) }, ty))
            }
            K::Match { scrutinee, arms } => self.match_expr(e, scrutinee, arms, scope, ctx, expected),
        }
    }

    pub(super) fn date(&mut self, text: &str, span: Span) -> Option<NaiveDate> {
        match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                let mut d =
                    Diagnostic::error(Code::E0105, span, format!("`{text}` is not a date")).with_label("no such day");
                let parts: Vec<u32> = text.split('-').filter_map(|p| p.parse().ok()).collect();
                if let [y, m, _] = parts.as_slice() {
                    if (1..=12).contains(m) {
                        let last = last_day(i32::try_from(*y).unwrap_or(1970), *m);
                        d = d.with_help(format!("month {m} of {y} has {last} days"));
                    } else {
                        d = d.with_help("months run from 01 to 12");
                    }
                }
                self.err(d);
                None
            }
        }
    }

    pub(super) fn call_expr(
        &mut self,
        e: &ast::Expr,
        name: &Ident,
        args: &[ast::Expr],
        scope: &Scope,
        ctx: Ctx,
    ) -> Option<(Expr, Type)> {
        const FUNCS: &[&str] = &["ceil", "floor", "min", "max", "len", "start", "end"];
        let arity = match name.name.as_str() {
            "min" | "max" => 2,
            n if FUNCS.contains(&n) => 1,
            _ => {
                let mut d = Diagnostic::error(Code::E0202, name.span, format!("no function named `{}`", name.name))
                    .with_label("unknown function");
                d = match suggest(&name.name, FUNCS.iter().copied()) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help("the functions are `ceil`, `floor`, `min`, `max`, `len`, `start`, `end`"),
                };
                self.err(d);
                return None;
            }
        };
        if args.len() != arity {
            self.err(
                Diagnostic::error(
                    Code::E0202,
                    e.span,
                    format!("`{}` takes {arity} argument(s), {} given", name.name, args.len()),
                )
                .with_label("wrong number of arguments"),
            );
            return None;
        }
        if name.name == "start" || name.name == "end" {
            let parts = args.first().and_then(paths::dotted);
            let step = match parts.as_deref() {
                Some([first, rest @ ..]) if !rest.is_empty() => {
                    let unit = ctx.unit?;
                    let decl = self.path_ref(first, rest, unit)?;
                    return Some((Expr::NodeTime { node: decl.id, end: name.name == "end" }, Type::Date));
                }
                Some([id]) => *id,
                _ => {
                    let sp = args.first().map_or(e.span, |a| a.span);
                    self.err(
                        Diagnostic::error(
                            Code::E0201,
                            sp,
                            format!("`{}` takes the name of a step or phase", name.name),
                        )
                        .with_label("not a step name"),
                    );
                    return None;
                }
            };
            let unit = ctx.unit?;
            let decl = self.node_ref(step, unit, "")?;
            return Some((Expr::NodeTime { node: decl.id, end: name.name == "end" }, Type::Date));
        }
        let mut lowered = Vec::new();
        let mut types = Vec::new();
        for a in args {
            let (x, t) = self.expr(a, scope, ctx)?;
            lowered.push(x);
            types.push((t, a.span));
        }
        let (func, ty) = match (name.name.as_str(), types.as_slice()) {
            ("ceil", [(t, _)]) if is_number(t) => (Func::Ceil, Type::Int),
            ("floor", [(t, _)]) if is_number(t) => (Func::Floor, Type::Int),
            ("len", [(Type::List { .. } | Type::Text, _)]) => (Func::Len, Type::Int),
            ("min" | "max", [(a, _), (b, _)]) if unify(a, b).is_some_and(|u| is_number(&u) || u == Type::Date) => {
                let f = if name.name == "min" { Func::Min } else { Func::Max };
                (f, unify(a, b).unwrap_or(Type::Int))
            }
            (_, [(t, sp), ..]) => {
                self.err(
                    Diagnostic::error(Code::E0201, *sp, format!("`{}` does not take `{t}`", name.name))
                        .with_label(format!("`{t}` here"))
                        .with_help(match name.name.as_str() {
                            "len" => "`len` takes a list or a text",
                            "min" | "max" => "`min` and `max` take two numbers or two dates",
                            _ => "`ceil` and `floor` take a number",
                        }),
                );
                return None;
            }
            _ => return None,
        };
        Some((Expr::Call { func, args: lowered }, ty))
    }

    pub(super) fn match_expr(
        &mut self,
        e: &ast::Expr,
        scrutinee: &ast::Expr,
        arms: &[ast::MatchArm],
        scope: &Scope,
        ctx: Ctx,
        expected: Option<&Type>,
    ) -> Option<(Expr, Type)> {
        let (sx, st) = self.expr(scrutinee, scope, ctx)?;
        let mut lowered = Vec::new();
        let mut result: Option<Type> = None;
        let mut ok = true;
        for arm in arms {
            let pattern = self.pattern(&arm.pattern, &st);
            let value = self.expr_expecting(&arm.value, scope, ctx, expected);
            match (pattern, value) {
                (Some(p), Some((vx, vt))) => {
                    match &result {
                        None => result = Some(vt),
                        Some(prev) => match unify(prev, &vt) {
                            Some(u) => result = Some(u),
                            None => {
                                self.err(
                                    Diagnostic::error(
                                        Code::E0201,
                                        arm.value.span,
                                        format!("match arms differ: `{prev}` and `{vt}`"),
                                    )
                                    .with_label(format!("`{vt}` here")),
                                );
                                ok = false;
                            }
                        },
                    }
                    lowered.push(ir::Arm { pattern: p, value: vx });
                }
                _ => ok = false,
            }
        }
        if !ok {
            return None;
        }
        if is_number(&st) {
            self.coverage(e, arms, &lowered);
        } else if !lowered.iter().any(|a| a.pattern == ir::Pattern::Any) && st != Type::Bool {
            self.err(
                Diagnostic::error(Code::E0204, e.span, "this `match` may find no arm")
                    .with_label("no `_` arm")
                    .with_help("add `_ => …` as the last arm"),
            );
        }
        Some((Expr::Match { scrutinee: Box::new(sx), arms: lowered }, result?))
    }

    pub(super) fn pattern(&mut self, p: &ast::Pattern, ty: &Type) -> Option<ir::Pattern> {
        let num = |this: &mut Self, s: &str| -> Option<Value> {
            if !is_number(ty) {
                this.err(
                    Diagnostic::error(Code::E0201, p.span, format!("a number pattern cannot match `{ty}`"))
                        .with_label("number pattern"),
                );
                return None;
            }
            parse_rational(s).map(Value::Number)
        };
        Some(match &p.kind {
            ast::PatternKind::Wildcard => ir::Pattern::Any,
            ast::PatternKind::Range { low, high } => {
                let low = match low {
                    Some(l) => Some(num(self, l)?),
                    None => None,
                };
                let high = match high {
                    Some(h) => Some(num(self, h)?),
                    None => None,
                };
                ir::Pattern::Range { low, high }
            }
            ast::PatternKind::Number(n) => ir::Pattern::Equals { value: num(self, n)? },
            ast::PatternKind::Str(s) => {
                if *ty != Type::Text {
                    self.err(
                        Diagnostic::error(Code::E0201, p.span, format!("a text pattern cannot match `{ty}`"))
                            .with_label("text pattern"),
                    );
                    return None;
                }
                ir::Pattern::Equals { value: Value::Text(s.clone()) }
            }
            ast::PatternKind::Bool(b) => {
                if *ty != Type::Bool {
                    self.err(
                        Diagnostic::error(Code::E0201, p.span, format!("a `bool` pattern cannot match `{ty}`"))
                            .with_label("bool pattern"),
                    );
                    return None;
                }
                ir::Pattern::Equals { value: Value::Bool(*b) }
            }
            ast::PatternKind::Date(d) => {
                if *ty != Type::Date {
                    self.err(
                        Diagnostic::error(Code::E0201, p.span, format!("a date pattern cannot match `{ty}`"))
                            .with_label("date pattern"),
                    );
                    return None;
                }
                ir::Pattern::Equals { value: Value::Date(self.date(d, p.span)?) }
            }
        })
    }

    /// Decision tables over numbers: arms may not overlap and, without `_`, must cover every value
    /// (for an integer scrutinee, whole numbers). Boundaries are where such tables go wrong (R2.4).
    pub(super) fn coverage(&mut self, e: &ast::Expr, arms: &[ast::MatchArm], lowered: &[ir::Arm]) {
        // Intervals as (low, high) with None = unbounded; Equals as a point.
        let mut intervals: Vec<(Option<BigRational>, Option<BigRational>, Span)> = Vec::new();
        let mut has_wildcard = false;
        for (arm, l) in arms.iter().zip(lowered) {
            match &l.pattern {
                ir::Pattern::Any => has_wildcard = true,
                ir::Pattern::Range { low, high } => {
                    let lo = low.as_ref().and_then(|v| v.as_number().cloned());
                    let hi = high.as_ref().and_then(|v| v.as_number().cloned());
                    if let (Some(a), Some(b)) = (&lo, &hi) {
                        if a > b {
                            self.err(
                                Diagnostic::error(Code::E0204, arm.pattern.span, "this range is empty")
                                    .with_label("its start is after its end"),
                            );
                            continue;
                        }
                    }
                    intervals.push((lo, hi, arm.pattern.span));
                }
                ir::Pattern::Equals { value } => {
                    let v = value.as_number().cloned();
                    intervals.push((v.clone(), v, arm.pattern.span));
                }
            }
        }
        // Overlaps, pairwise (decision tables are small).
        for i in 0..intervals.len() {
            for j in (i + 1)..intervals.len() {
                let (a, b) = (&intervals[i], &intervals[j]);
                let lo = max_opt(&a.0, &b.0);
                let hi = min_opt(&a.1, &b.1);
                let overlap = match (&lo, &hi) {
                    (Some(l), Some(h)) => l <= h,
                    _ => true,
                };
                if overlap {
                    let at = lo.or(hi).map(|v| crate::value::format_rational(&v)).unwrap_or_default();
                    self.err(
                        Diagnostic::error(
                            Code::E0204,
                            b.2,
                            format!(
                                "match arms overlap{}",
                                if at.is_empty() { String::new() } else { format!(" at `{at}`") }
                            ),
                        )
                        .with_label("this arm")
                        .with_secondary(a.2, "overlaps this earlier arm")
                        .with_help("each value must fall under exactly one arm; write both ends of every band"),
                    );
                }
            }
        }
        if has_wildcard {
            return;
        }
        // Gaps over the integers.
        let mut sorted = intervals.clone();
        sorted.sort_by(|a, b| match (&a.0, &b.0) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, _) => std::cmp::Ordering::Less,
            (_, None) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => x.cmp(y),
        });
        let one = BigRational::from_integer(1.into());
        let mut covered_to: Option<Option<BigRational>> = None; // None: nothing yet; Some(None): up to +inf
        let mut gap: Option<String> = None;
        for (lo, hi, _) in &sorted {
            match &covered_to {
                None => {
                    if let Some(l) = lo {
                        gap = Some(format!("..={}", crate::value::format_rational(&(l.ceil() - &one))));
                        break;
                    }
                }
                Some(None) => break,
                Some(Some(c)) => {
                    let next = c.floor() + &one;
                    if let Some(l) = lo {
                        if l.ceil() > next {
                            let last = l.ceil() - &one;
                            gap = Some(if last == next {
                                crate::value::format_rational(&next)
                            } else {
                                format!(
                                    "{}..={}",
                                    crate::value::format_rational(&next),
                                    crate::value::format_rational(&last)
                                )
                            });
                            break;
                        }
                    }
                }
            }
            covered_to = Some(match (&covered_to, hi) {
                (_, None) => None,
                (Some(Some(c)), Some(h)) => Some(if h > c { h.clone() } else { c.clone() }),
                (_, Some(h)) => Some(h.clone()),
            });
        }
        if gap.is_none() {
            match covered_to {
                Some(Some(c)) => gap = Some(format!("{}..", crate::value::format_rational(&(c.floor() + one)))),
                None => gap = Some("every value".into()),
                Some(None) => {}
            }
        }
        if let Some(g) = gap {
            self.err(
                Diagnostic::error(Code::E0204, e.span, format!("this `match` does not cover `{g}`"))
                    .with_label("not every value has an arm")
                    .with_help(format!("add an arm for `{g}`, or `_ => …`")),
            );
        }
    }
}

pub(super) fn max_opt(a: &Option<BigRational>, b: &Option<BigRational>) -> Option<BigRational> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if x > y { x.clone() } else { y.clone() }),
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (None, None) => None,
    }
}

pub(super) fn min_opt(a: &Option<BigRational>, b: &Option<BigRational>) -> Option<BigRational> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if x < y { x.clone() } else { y.clone() }),
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (None, None) => None,
    }
}

pub(super) fn last_day(y: i32, m: u32) -> u32 {
    (28..=31).rev().find(|d| NaiveDate::from_ymd_opt(y, m, *d).is_some()).unwrap_or(28)
}

pub(super) fn is_number(t: &Type) -> bool {
    matches!(t, Type::Int | Type::Decimal)
}

/// The common type of two, with `int` widening to `decimal`.
pub(super) fn unify(a: &Type, b: &Type) -> Option<Type> {
    match (a, b) {
        _ if a == b => Some(a.clone()),
        (Type::Int, Type::Decimal) | (Type::Decimal, Type::Int) => Some(Type::Decimal),
        (Type::List { of: x }, Type::List { of: y }) => unify(x, y).map(|u| Type::List { of: Box::new(u) }),
        _ => None,
    }
}

pub(super) fn assignable(want: &Type, got: &Type) -> bool {
    unify(want, got).is_some_and(|u| u == *want)
}

pub(super) fn binary_type(op: ast::BinOp, l: &Type, r: &Type) -> Option<Type> {
    use ast::BinOp as B;
    match op {
        B::And | B::Or => (*l == Type::Bool && *r == Type::Bool).then_some(Type::Bool),
        B::Eq | B::Ne => unify(l, r).map(|_| Type::Bool),
        B::Lt | B::Le | B::Gt | B::Ge => {
            let u = unify(l, r)?;
            (is_number(&u) || u == Type::Date || u == Type::Text).then_some(Type::Bool)
        }
        B::Add | B::Sub => match (l, r) {
            (Type::Date, Type::Duration) => Some(Type::Date),
            (Type::Duration, Type::Date) if op == B::Add => Some(Type::Date),
            _ if is_number(l) && is_number(r) => unify(l, r),
            _ => None,
        },
        B::Mul => (is_number(l) && is_number(r)).then(|| unify(l, r)).flatten(),
        B::Div => (is_number(l) && is_number(r)).then_some(Type::Decimal),
    }
}
