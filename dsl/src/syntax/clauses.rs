//! Parse trees of a step's clauses, recurrences and parameter ranges to AST.

use super::*;

pub(super) fn clause(p: Pair<Rule>) -> PResult<Clause> {
    let span = span_of(&p);
    let rule = p.as_rule();
    let mut k = Kids::of(p);
    let kind = match rule {
        Rule::by_clause => {
            k.kw()?;
            ClauseKind::By(k.rest().map(ident).collect())
        }
        Rule::after_clause | Rule::after_any_clause => {
            k.kw()?;
            let any = rule == Rule::after_any_clause;
            if any {
                k.kw()?;
            }
            let deps = k
                .rest()
                .map(|d| {
                    let span = span_of(&d);
                    let mut dk = Kids::of(d);
                    let step = ident(dk.expect(Rule::ident)?);
                    let mut inner = Vec::new();
                    while let Some(i) = dk.opt(Rule::ident) {
                        inner.push(ident(i));
                    }
                    let outcome = match dk.opt(Rule::outcome) {
                        Some(o) => match Kids::of(o).next()?.as_rule() {
                            Rule::kw_approved => Some(Outcome::Approved),
                            _ => Some(Outcome::Rejected),
                        },
                        None => None,
                    };
                    Ok(Dependency { step, inner, outcome, span })
                })
                .collect::<PResult<Vec<_>>>()?;
            if any {
                ClauseKind::AfterAny(deps)
            } else {
                ClauseKind::After(deps)
            }
        }
        Rule::when_clause => {
            k.kw()?;
            ClauseKind::When(expr(k.expect(Rule::expr)?)?)
        }
        Rule::window_clause => {
            k.kw()?;
            let from = expr(k.expect(Rule::expr)?)?;
            let to = expr(k.expect(Rule::expr)?)?;
            ClauseKind::Window { from, to }
        }
        Rule::for_clause => {
            k.kw()?;
            let var = ident(k.expect(Rule::ident)?);
            k.kw()?;
            let list = expr(k.expect(Rule::expr)?)?;
            ClauseKind::For { var, list }
        }
        Rule::rule_clause => {
            k.kw()?;
            let r = Kids::of(k.expect(Rule::approval_rule)?).next()?;
            let rule = match r.as_rule() {
                Rule::kw_all => ApprovalRule::All,
                Rule::kw_any => ApprovalRule::Any,
                Rule::kw_sequence => ApprovalRule::Sequence,
                Rule::k_of_n => {
                    let mut rk = Kids::of(r);
                    let kk = small_int(rk.expect(Rule::int)?)?;
                    rk.kw()?;
                    let n = small_int(rk.expect(Rule::int)?)?;
                    ApprovalRule::KOfN { k: kk, n }
                }
                _ => {
                    let mut rk = Kids::of(r);
                    let strict = rk.expect(Rule::fraction_op)?.as_str() == ">";
                    let num = small_int(rk.expect(Rule::int)?)?;
                    let den = small_int(rk.expect(Rule::int)?)?;
                    ApprovalRule::Fraction { strict, num, den }
                }
            };
            ClauseKind::Rule(rule)
        }
        Rule::due_clause => {
            k.kw()?;
            let d = k.expect(Rule::deadline)?;
            let mut dk = Kids::of(d);
            let first = dk.next()?;
            let deadline = if first.as_rule() == Rule::duration_lit {
                let duration = duration(first)?;
                let after = if dk.peek_is(Rule::kw_after) {
                    dk.kw()?;
                    Some(step_path(dk.expect(Rule::step_path)?)?)
                } else {
                    None
                };
                Deadline::Relative { duration, after }
            } else if first.as_rule() == Rule::amount_duration {
                let (amount, unit) = amount_duration(first)?;
                let after = if dk.peek_is(Rule::kw_after) {
                    dk.kw()?;
                    Some(step_path(dk.expect(Rule::step_path)?)?)
                } else {
                    None
                };
                Deadline::Amount { amount, unit, after }
            } else {
                Deadline::At(expr(first)?)
            };
            let roll = k.opt(Rule::roll).is_some();
            ClauseKind::Due { deadline, roll }
        }
        Rule::remind_clause => {
            k.kw()?;
            ClauseKind::Remind(duration(k.expect(Rule::duration_lit)?)?)
        }
        Rule::breach_clause => {
            k.kw()?;
            k.kw()?;
            let actions = k
                .rest()
                .map(|a| {
                    let inner = Kids::of(a).next()?;
                    Ok(match inner.as_rule() {
                        Rule::kw_overdue => BreachAction::Overdue,
                        Rule::kw_reject => BreachAction::Reject,
                        Rule::breach_escalate => {
                            let mut ak = Kids::of(inner);
                            ak.kw()?;
                            BreachAction::Escalate(ident(ak.expect(Rule::ident)?))
                        }
                        Rule::breach_reassign => {
                            let mut ak = Kids::of(inner);
                            ak.kw()?;
                            BreachAction::Reassign(ident(ak.expect(Rule::ident)?))
                        }
                        Rule::return_to => {
                            let mut ak = Kids::of(inner);
                            ak.kw()?;
                            BreachAction::Return(step_path(ak.expect(Rule::step_path)?)?)
                        }
                        _ => {
                            let mut ak = Kids::of(inner);
                            ak.kw()?;
                            BreachAction::Notify(ident(ak.expect(Rule::ident)?))
                        }
                    })
                })
                .collect::<PResult<Vec<_>>>()?;
            ClauseKind::Breach(actions)
        }
        Rule::rejected_clause => {
            k.kw()?;
            k.kw()?;
            match k.opt(Rule::return_to) {
                Some(r) => {
                    let mut rk = Kids::of(r);
                    rk.kw()?;
                    ClauseKind::OnRejected(Some(step_path(rk.expect(Rule::step_path)?)?))
                }
                None => ClauseKind::OnRejected(None),
            }
        }
        Rule::objection_clause => {
            k.kw()?;
            k.kw()?;
            let mut rk = Kids::of(k.expect(Rule::return_to)?);
            rk.kw()?;
            ClauseKind::OnObjection(step_path(rk.expect(Rule::step_path)?)?)
        }
        Rule::min_clause => {
            k.kw()?;
            if k.peek_is(Rule::amount_duration) {
                let (amount, unit) = amount_duration(k.next()?)?;
                ClauseKind::MinAmount { amount, unit }
            } else {
                ClauseKind::Min(duration(k.expect(Rule::duration_lit)?)?)
            }
        }
        Rule::form_clause => {
            k.kw()?;
            let items = k
                .rest()
                .map(|f| {
                    let span = span_of(&f);
                    let rule = f.as_rule();
                    let mut fk = Kids::of(f);
                    if rule == Rule::require_rule {
                        fk.kw()?;
                        let condition = expr(fk.expect(Rule::expr)?)?;
                        fk.kw()?;
                        let message = string(fk.expect(Rule::string)?)?;
                        Ok(FormItem::Require { condition, message, span })
                    } else {
                        let name = ident(fk.expect(Rule::ident)?);
                        let ty = type_expr(fk.expect(Rule::type_expr)?)?;
                        let optional = fk.opt(Rule::optional).is_some();
                        let personal = fk.opt(Rule::personal).is_some();
                        Ok(FormItem::Field { name, ty, optional, personal, span })
                    }
                })
                .collect::<PResult<Vec<_>>>()?;
            ClauseKind::Form(items)
        }
        Rule::vote_clause => {
            let key = match Kids::of(k.expect(Rule::vote_key)?).next()?.as_rule() {
                Rule::kw_seats => VoteKey::Seats,
                Rule::kw_eligible => VoteKey::Eligible,
                Rule::kw_quorum => VoteKey::Quorum,
                Rule::kw_elect => VoteKey::Elect,
                Rule::kw_ballot => VoteKey::Ballot,
                _ => VoteKey::Slate,
            };
            let value = expr(k.expect(Rule::expr)?)?;
            let message = match k.opt(Rule::kw_else) {
                Some(_) => Some(string(k.expect(Rule::string)?)?),
                None => None,
            };
            ClauseKind::Vote { key, value, message }
        }
        Rule::use_template_clause => {
            k.kw()?;
            ClauseKind::UseTemplate(ident(k.expect(Rule::ident)?))
        }
        Rule::with_clause => {
            k.kw()?;
            let bindings = k
                .rest()
                .map(|b| {
                    let mut bk = Kids::of(b);
                    let name = ident(bk.expect(Rule::ident)?);
                    let value = expr(bk.expect(Rule::expr)?)?;
                    Ok((name, value))
                })
                .collect::<PResult<Vec<_>>>()?;
            ClauseKind::With(bindings)
        }
        Rule::requires_clause => {
            k.kw()?;
            k.kw()?;
            let policy = ident(k.expect(Rule::ident)?);
            k.kw()?;
            let param = ident(k.expect(Rule::ident)?);
            let value = expr(k.expect(Rule::expr)?)?;
            k.kw()?;
            let message = string(k.expect(Rule::string)?)?;
            ClauseKind::Requires { policy, param, value, message }
        }
        Rule::may_return_clause => {
            k.kw()?;
            k.kw()?;
            let mut targets = Vec::new();
            let mut by = Vec::new();
            let mut after_by = false;
            for p in k.rest() {
                match p.as_rule() {
                    Rule::kw_by => after_by = true,
                    _ if after_by => by.push(ident(p)),
                    _ => targets.push(step_path(p)?),
                }
            }
            ClauseKind::MayReturn { targets, by }
        }
        Rule::urge_clause => {
            k.kw()?;
            k.kw()?;
            ClauseKind::UrgeBy(k.rest().map(ident).collect())
        }
        Rule::owned_clause => ClauseKind::Owned,
        Rule::copy_clause => {
            k.kw()?;
            k.kw()?;
            ClauseKind::CopyBy(k.rest().map(ident).collect())
        }
        Rule::approvers_clause => {
            k.kw()?;
            k.kw()?;
            let mut by = Vec::new();
            let mut pool = Vec::new();
            let mut after_from = false;
            let mut max = None;
            for p in k.rest() {
                match p.as_rule() {
                    Rule::kw_from => after_from = true,
                    Rule::kw_max => {}
                    Rule::int => max = Some(small_int(p)?),
                    _ if after_from => pool.push(ident(p)),
                    _ => by.push(ident(p)),
                }
            }
            ClauseKind::Approvers { by, pool, max }
        }
        Rule::transfer_clause => {
            k.kw()?;
            k.kw()?;
            let mut by = Vec::new();
            let mut restart = false;
            for p in k.rest() {
                match p.as_rule() {
                    Rule::restart => restart = true,
                    _ => by.push(ident(p)),
                }
            }
            ClauseKind::Transfer { by, restart }
        }
        Rule::extend_clause => {
            k.kw()?;
            k.kw()?;
            let mut by = Vec::new();
            let mut max = None;
            let mut approved_by = Vec::new();
            let mut approvers = false;
            for p in k.rest() {
                match p.as_rule() {
                    Rule::kw_max | Rule::kw_by => {}
                    Rule::kw_approved => approvers = true,
                    Rule::duration_lit => max = Some(duration(p)?),
                    _ if approvers => approved_by.push(ident(p)),
                    _ => by.push(ident(p)),
                }
            }
            let max = max.ok_or_else(|| internal(span, "`extend` without `max`"))?;
            ClauseKind::Extend { by, max, approved_by }
        }
        Rule::approve_only_clause => {
            k.kw()?;
            k.kw()?;
            k.kw()?;
            let condition = expr(k.expect(Rule::expr)?)?;
            k.kw()?;
            let message = string(k.expect(Rule::string)?)?;
            ClauseKind::ApproveOnly { condition, message }
        }
        other => return Err(internal(span, &format!("unexpected {other:?}"))),
    };
    Ok(Clause { kind, span })
}

/// `recur …` (R0.3): how often, on which days, from what, and what the next cycle takes over.
pub(super) fn recur(p: Pair<Rule>) -> PResult<Item> {
    let span = span_of(&p);
    let mut k = Kids::of(p);
    k.kw()?;
    let head = k.next()?;
    let every = match head.as_rule() {
        Rule::recur_every => {
            let mut hk = Kids::of(head);
            hk.kw()?;
            let n = small_int(hk.expect(Rule::int)?)?;
            let unit = match Kids::of(hk.expect(Rule::recur_unit)?).next()?.as_rule() {
                Rule::kw_years | Rule::kw_year => RecurUnit::Years,
                _ => RecurUnit::Months,
            };
            RecurEvery::Every { n, unit }
        }
        _ => match Kids::of(head).next()?.as_rule() {
            Rule::kw_monthly => RecurEvery::Monthly,
            Rule::kw_quarterly => RecurEvery::Quarterly,
            Rule::kw_half_yearly => RecurEvery::HalfYearly,
            _ => RecurEvery::Yearly,
        },
    };
    let mut r =
        Recur { every, on: Vec::new(), on_span: None, from: None, carry: Vec::new(), dated: None, by: None, span };
    for opt in k.rest() {
        let opt_span = span_of(&opt);
        let rule = opt.as_rule();
        let mut ok = Kids::of(opt);
        match rule {
            Rule::recur_on => {
                ok.kw()?;
                r.on_span = Some(opt_span);
                let list = ok.next()?;
                let is_days = list.as_rule() == Rule::recur_days;
                let mut lk = Kids::of(list);
                if is_days {
                    lk.kw()?;
                    for d in lk.rest() {
                        r.on.push(RecurDay { month: None, day: small_int(d)? });
                    }
                } else {
                    for md in lk.rest() {
                        let (m, d) = md.as_str().split_once('-').unwrap_or(("0", "0"));
                        r.on.push(RecurDay { month: Some(m.parse().unwrap_or(0)), day: d.parse().unwrap_or(0) });
                    }
                }
            }
            Rule::recur_from => {
                ok.kw()?;
                let a = ok.next()?;
                r.from = Some(if a.as_rule() == Rule::recur_end {
                    let mut ak = Kids::of(a);
                    ak.kw()?;
                    RecurAnchor::End(ident(ak.expect(Rule::ident)?))
                } else {
                    RecurAnchor::Start
                });
            }
            Rule::recur_carry => {
                ok.kw()?;
                r.carry.extend(ok.rest().map(ident));
            }
            Rule::recur_dated => {
                ok.kw()?;
                r.dated = Some(ident(ok.expect(Rule::ident)?));
            }
            Rule::recur_by => {
                ok.kw()?;
                r.by = Some(ident(ok.expect(Rule::ident)?));
            }
            other => return Err(internal(opt_span, &format!("unexpected {other:?} in recur"))),
        }
    }
    Ok(Item::Recur(r))
}

pub(super) fn small_int(p: Pair<Rule>) -> PResult<u32> {
    p.as_str().parse::<u32>().map_err(|_| {
        Diagnostic::error(Code::E0111, span_of(&p), format!("`{}` is too large here", p.as_str()))
            .with_label("at most 4294967295")
    })
}

/// `>= 0`, `<= 9`, `in 30..=50`.
pub(super) fn param_range(p: Pair<Rule>) -> PResult<ParamRange> {
    let span = span_of(&p);
    let inner = Kids::of(p).next()?;
    let rule = inner.as_rule();
    let mut k = Kids::of(inner);
    Ok(match rule {
        Rule::range_at_least => {
            ParamRange { low: Some(bound_text(k.expect(Rule::range_bound)?)?), high: None, between: false, span }
        }
        Rule::range_at_most => {
            ParamRange { low: None, high: Some(bound_text(k.expect(Rule::range_bound)?)?), between: false, span }
        }
        _ => {
            k.kw()?;
            let low = bound_text(k.expect(Rule::range_bound)?)?;
            let high = bound_text(k.expect(Rule::range_bound)?)?;
            ParamRange { low: Some(low), high: Some(high), between: true, span }
        }
    })
}

/// `办结时限 workdays`, `(期限 + 2) days`: the amount as an expression, and the unit.
fn amount_duration(p: Pair<Rule>) -> PResult<(Expr, TimeUnit)> {
    let mut k = Kids::of(p);
    let a = Kids::of(k.expect(Rule::amount)?).next()?;
    let amount = if a.as_rule() == Rule::ident {
        let id = ident(a);
        Expr { span: id.span, kind: ExprKind::Name(id) }
    } else {
        primary(a, 0)?.0
    };
    let unit = match k.expect(Rule::amount_unit)?.as_str() {
        "workdays" | "workday" => TimeUnit::Workdays,
        "days" | "day" => TimeUnit::Days,
        "months" | "month" => TimeUnit::Months,
        _ => TimeUnit::Years,
    };
    Ok((amount, unit))
}
