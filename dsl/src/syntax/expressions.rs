//! Parse trees of expressions and patterns to AST, with the nesting bound (E0111) checked as
//! they are built: precedence climbing over binary operators, unary operators, primaries.

use super::*;

fn too_deep(span: Span) -> Diagnostic {
    Diagnostic::error(Code::E0002, span, format!("expression nested deeper than {MAX_EXPR_DEPTH} levels"))
        .with_label("too deep")
        .with_help("split the expression into named parts (`let`)")
}

/// The height of a node about to be built, if it is allowed.
fn fits(height: usize, span: Span) -> PResult<usize> {
    if height > MAX_EXPR_DEPTH {
        Err(too_deep(span))
    } else {
        Ok(height)
    }
}

pub(super) fn expr(p: Pair<Rule>) -> PResult<Expr> {
    expr_at(p, 0).map(|(e, _)| e)
}

/// Precedence climbing over the flat `prefix* primary postfix* (infix …)*` sequence. `depth`
/// counts the recursion above, which `unary` bounds.
fn expr_at(p: Pair<Rule>, depth: usize) -> PResult<Tall> {
    let span = span_of(&p);
    let mut toks: std::iter::Peekable<_> = children(p).peekable();
    let e = climb(&mut toks, 0, span, depth)?;
    if let Some(extra) = toks.next() {
        return Err(internal(span_of(&extra), "trailing tokens in expression"));
    }
    Ok(e)
}

fn binop(rule: Rule) -> Option<BinOp> {
    Some(match rule {
        Rule::op_or => BinOp::Or,
        Rule::op_and => BinOp::And,
        Rule::op_eq => BinOp::Eq,
        Rule::op_ne => BinOp::Ne,
        Rule::op_lt => BinOp::Lt,
        Rule::op_le => BinOp::Le,
        Rule::op_gt => BinOp::Gt,
        Rule::op_ge => BinOp::Ge,
        Rule::op_add => BinOp::Add,
        Rule::op_sub => BinOp::Sub,
        Rule::op_mul => BinOp::Mul,
        Rule::op_div => BinOp::Div,
        _ => return None,
    })
}

fn climb<'i, I: Iterator<Item = Pair<'i, Rule>>>(
    toks: &mut std::iter::Peekable<I>,
    min_prec: u8,
    span: Span,
    depth: usize,
) -> PResult<Tall> {
    let (mut lhs, mut height) = unary(toks, span, depth)?;
    while let Some(op) = toks.peek().and_then(|t| binop(t.as_rule())) {
        let prec = op.precedence();
        if prec < min_prec {
            break;
        }
        toks.next();
        let (rhs, rhs_height) = climb(toks, prec + 1, span, depth + 1)?;
        let s = lhs.span.to(rhs.span);
        height = fits(height.max(rhs_height) + 1, s)?;
        lhs = Expr { kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), span: s };
    }
    Ok((lhs, height))
}

fn unary<'i, I: Iterator<Item = Pair<'i, Rule>>>(
    toks: &mut std::iter::Peekable<I>,
    span: Span,
    depth: usize,
) -> PResult<Tall> {
    let t = toks.next().ok_or_else(|| internal(span, "expression ended early"))?;
    if depth > MAX_EXPR_DEPTH {
        return Err(too_deep(span_of(&t)));
    }
    match t.as_rule() {
        Rule::op_not => {
            // `not` binds looser than comparisons: `not a > b` is `not (a > b)`.
            let (operand, h) = climb(toks, 3, span, depth + 1)?;
            let s = span_of(&t).to(operand.span);
            Ok((Expr { kind: ExprKind::Unary(UnOp::Not, Box::new(operand)), span: s }, fits(h + 1, s)?))
        }
        Rule::op_neg => {
            let (operand, h) = unary(toks, span, depth + 1)?;
            let s = span_of(&t).to(operand.span);
            Ok((Expr { kind: ExprKind::Unary(UnOp::Neg, Box::new(operand)), span: s }, fits(h + 1, s)?))
        }
        _ => {
            let (mut e, mut h) = primary(t, depth + 1)?;
            while toks.peek().is_some_and(|t| t.as_rule() == Rule::field_access) {
                if let Some(f) = toks.next() {
                    let fs = span_of(&f);
                    let name = ident(Kids::of(f).expect(Rule::ident)?);
                    let s = e.span.to(fs);
                    h = fits(h + 1, s)?;
                    e = Expr { kind: ExprKind::Field(Box::new(e), name), span: s };
                }
            }
            Ok((e, h))
        }
    }
}

pub(super) fn primary(p: Pair<Rule>, depth: usize) -> PResult<Tall> {
    let span = span_of(&p);
    let (kind, below) = match p.as_rule() {
        Rule::int => (ExprKind::Int(p.as_str().to_string()), 0),
        Rule::decimal_lit => (ExprKind::Decimal(p.as_str().to_string()), 0),
        Rule::percent_lit => (ExprKind::Percent(p.as_str().trim_end_matches('%').to_string()), 0),
        Rule::date_lit => (ExprKind::Date(p.as_str().to_string()), 0),
        Rule::string => (ExprKind::Str(string(p)?), 0),
        Rule::bool_lit => (ExprKind::Bool(p.as_str() == "true"), 0),
        Rule::duration_lit => (ExprKind::Duration(duration(p)?), 0),
        Rule::ident => (ExprKind::Name(ident(p)), 0),
        Rule::paren => {
            let (e, h) = expr_at(Kids::of(p).expect(Rule::expr)?, depth + 1)?;
            (ExprKind::Paren(Box::new(e)), h)
        }
        Rule::list_lit => {
            let (items, h) = exprs_at(children(p), depth + 1)?;
            (ExprKind::List(items), h)
        }
        Rule::call_expr => {
            let mut k = Kids::of(p);
            let name = ident(k.expect(Rule::ident)?);
            let (args, h) = exprs_at(k.rest(), depth + 1)?;
            (ExprKind::Call(name, args), h)
        }
        Rule::if_expr => {
            // `if a { x } else if b { y } … else { z }` is flat in the grammar (a chain of any
            // length costs no stack there); it is folded here from the right.
            let mut k = Kids::of(p);
            k.expect(Rule::kw_if)?;
            let mut branches = Vec::new();
            let mut start = span.start;
            loop {
                let (cond, hc) = expr_at(k.expect(Rule::expr)?, depth + 1)?;
                let (then, ht) = expr_at(k.expect(Rule::expr)?, depth + 1)?;
                branches.push((start, cond, then, hc.max(ht)));
                k.expect(Rule::kw_else)?;
                match k.opt(Rule::kw_if) {
                    Some(kw) => start = kw.as_span().start(),
                    None => break,
                }
            }
            let (mut e, mut h) = expr_at(k.expect(Rule::expr)?, depth + 1)?;
            for (start, cond, then, hb) in branches.into_iter().rev() {
                let s = Span::new(start, span.end);
                h = fits(h.max(hb) + 1, s)?;
                e = Expr {
                    kind: ExprKind::If { cond: Box::new(cond), then: Box::new(then), otherwise: Box::new(e) },
                    span: s,
                };
            }
            return Ok((e, h));
        }
        Rule::match_expr => {
            let mut k = Kids::of(p);
            k.kw()?;
            let (scrutinee, mut height) = expr_at(k.expect(Rule::expr)?, depth + 1)?;
            let arms = k
                .rest()
                .map(|a| {
                    let span = span_of(&a);
                    let mut ak = Kids::of(a);
                    let pattern = pattern(ak.expect(Rule::pattern)?)?;
                    let (value, h) = expr_at(ak.expect(Rule::expr)?, depth + 1)?;
                    height = height.max(h);
                    Ok(MatchArm { pattern, value, span })
                })
                .collect::<PResult<Vec<_>>>()?;
            (ExprKind::Match { scrutinee: Box::new(scrutinee), arms }, height)
        }
        other => return Err(internal(span, &format!("unexpected {other:?} in expression"))),
    };
    Ok((Expr { kind, span }, fits(below + 1, span)?))
}

/// Expressions side by side (a list, arguments) and the tallest one's height.
fn exprs_at<'i>(ps: impl Iterator<Item = Pair<'i, Rule>>, depth: usize) -> PResult<(Vec<Expr>, usize)> {
    let mut height = 0;
    let mut out = Vec::new();
    for p in ps {
        let (e, h) = expr_at(p, depth)?;
        height = height.max(h);
        out.push(e);
    }
    Ok((out, height))
}

fn pattern(p: Pair<Rule>) -> PResult<Pattern> {
    let span = span_of(&p);
    let inner = Kids::of(p).next()?;
    let kind = match inner.as_rule() {
        Rule::wildcard => PatternKind::Wildcard,
        Rule::range_pattern => {
            // `..=b` starts with the dots; `a..` and `a..=b` with a bound.
            let open_low = inner.as_str().starts_with("..");
            let bounds = children(inner).map(bound_text).collect::<PResult<Vec<_>>>()?;
            match (open_low, bounds.as_slice()) {
                (true, [high]) => PatternKind::Range { low: None, high: Some(high.clone()) },
                (false, [low, high]) => PatternKind::Range { low: Some(low.clone()), high: Some(high.clone()) },
                (false, [low]) => PatternKind::Range { low: Some(low.clone()), high: None },
                _ => return Err(internal(span, "range pattern")),
            }
        }
        _ => {
            let lit = Kids::of(inner).next()?;
            match lit.as_rule() {
                Rule::string => PatternKind::Str(string(lit)?.value),
                Rule::bool_lit => PatternKind::Bool(lit.as_str() == "true"),
                Rule::date_lit => PatternKind::Date(lit.as_str().to_string()),
                _ => PatternKind::Number(bound_text(lit)?),
            }
        }
    };
    Ok(Pattern { kind, span })
}

/// A `range_bound` as written, without the blanks or comments allowed after its `-`.
pub(super) fn bound_text(p: Pair<Rule>) -> PResult<String> {
    let negative = p.as_str().starts_with('-');
    let number = Kids::of(p).next()?;
    Ok(format!("{}{}", if negative { "-" } else { "" }, number.as_str()))
}
