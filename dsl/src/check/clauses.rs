//! The clauses of a step or phase (`by`, `after`, `due`, `window`, `form`, vote rules, …):
//! which kind of node takes which (E0104), which are required (E0110), and their lowering.

use super::*;

impl Checker {
    /// Lowers the clauses of a node; returns the scope its expressions saw (with fan-out var).
    pub(super) fn clauses(
        &mut self,
        node: &mut ir::Node,
        clauses: &[&ast::Clause],
        step: Option<&ast::Step>,
        scope: &Scope,
        unit: &Unit,
    ) -> Scope {
        let ctx = Ctx { unit: Some(unit) };
        let kind = node.kind;
        let what = match step {
            Some(s) => format!("a {} step", s.kind.keyword()),
            None => "a phase".to_string(),
        };
        let mut seen: HashMap<String, Span> = HashMap::new();
        // The fan-out variable is visible to every other clause, wherever `for` is written.
        let mut scope = scope.clone();
        for c in clauses {
            if let ast::ClauseKind::For { var, list } = &c.kind {
                if let Some((expr, ty)) = self.expr(list, &scope, ctx) {
                    match ty {
                        Type::List { of } => {
                            self.item_types.insert(node.id.clone(), (*of).clone());
                            let mut frame = HashMap::new();
                            frame.insert(
                                var.name.clone(),
                                Binding { kind: RefKind::Element, id: var.name.clone(), ty: *of, span: var.span },
                            );
                            scope = scope.with_frame(frame);
                            node.for_each = Some(ir::ForEach { var: var.name.clone(), list: expr });
                        }
                        other => self.err(
                            Diagnostic::error(
                                Code::E0201,
                                list.span,
                                format!("`for` needs a list, but this is `{other}`"),
                            )
                            .with_label("not a list"),
                        ),
                    }
                }
            }
        }
        let mut vote_parts: HashMap<ast::VoteKey, (Option<Expr>, Span)> = HashMap::new();
        let mut vote_words: HashMap<ast::VoteKey, String> = HashMap::new();
        let mut form_scope: Option<Scope> = None;
        for c in clauses {
            let key = match &c.kind {
                ast::ClauseKind::Vote { key, .. } => key.keyword().to_string(),
                ast::ClauseKind::Remind(_) | ast::ClauseKind::MayReturn { .. } => {
                    format!("{}#{}", c.kind.keyword(), c.span.start)
                }
                k => k.keyword().to_string(),
            };
            if let Some(first) = seen.insert(key.clone(), c.span) {
                self.err(
                    Diagnostic::error(Code::E0108, c.span, format!("`{}` is given twice", c.kind.keyword()))
                        .with_label("second time")
                        .with_secondary(first, "first given here")
                        .with_help("merge them into one clause"),
                );
                continue;
            }
            if !clause_allowed(&c.kind, kind) {
                self.err(
                    Diagnostic::error(Code::E0109, c.span, format!("`{}` does not apply to {what}", c.kind.keyword()))
                        .with_label("not allowed here")
                        .with_help(clause_help(&c.kind)),
                );
                continue;
            }
            match &c.kind {
                ast::ClauseKind::By(roles) => {
                    let mut names = BTreeSet::new();
                    for r in roles {
                        if !names.insert(r.name.clone()) {
                            self.err(
                                Diagnostic::error(Code::E0101, r.span, format!("role `{}` is listed twice", r.name))
                                    .with_label("again"),
                            );
                            continue;
                        }
                        if self.role(r) {
                            node.roles.push(r.name.clone());
                        }
                    }
                }
                ast::ClauseKind::After(deps) => {
                    for d in deps {
                        let inner: Vec<&Ident> = d.inner.iter().collect();
                        if let Some(target) = self.path_ref(&d.step, &inner, unit) {
                            if target.id == node.id {
                                self.err(
                                    Diagnostic::error(
                                        Code::E0301,
                                        d.step.span,
                                        format!("`{}` waits for itself", d.step.name),
                                    )
                                    .with_label("dependency cycle"),
                                );
                                continue;
                            }
                            if let Some(spans) = self.spans.nodes.get_mut(&node.id) {
                                spans.after.push((target.id.clone(), d.span));
                            }
                            node.after.push(ir::Dependency { node: target.id.clone(), outcome: d.outcome });
                        }
                    }
                }
                ast::ClauseKind::AfterAny(deps) => {
                    for d in deps {
                        let inner: Vec<&Ident> = d.inner.iter().collect();
                        if let Some(target) = self.path_ref(&d.step, &inner, unit) {
                            node.after_any.push(ir::Dependency { node: target.id.clone(), outcome: d.outcome });
                        }
                    }
                }
                ast::ClauseKind::When(e) => {
                    if let Some((expr, ty)) = self.expr(e, &scope, ctx) {
                        self.expect_type(&Type::Bool, &ty, e.span, "`when`");
                        if self.is_constant(&expr) {
                            let env = ConstEnv { values: &self.constants };
                            if let Ok(Value::Bool(false)) = eval::eval(&expr, &env) {
                                self.never.push((node.id.clone(), c.span));
                            }
                        }
                        node.guard = Some(expr);
                    }
                }
                ast::ClauseKind::Window { from, to } => {
                    let f = self.expr(from, &scope, ctx);
                    let t = self.expr(to, &scope, ctx);
                    if let (Some((fe, ft)), Some((te, tt))) = (f, t) {
                        self.expect_type(&Type::Date, &ft, from.span, "a window's start");
                        self.expect_type(&Type::Date, &tt, to.span, "a window's end");
                        node.window = Some(ir::Window { from: fe, to: te });
                        if let Some(spans) = self.spans.nodes.get_mut(&node.id) {
                            spans.window = Some(c.span);
                        }
                    }
                }
                ast::ClauseKind::For { .. } => {}
                ast::ClauseKind::Rule(rule) => {
                    node.rule = Some(match rule {
                        ast::ApprovalRule::All => ir::ApprovalRule::All,
                        ast::ApprovalRule::Any => ir::ApprovalRule::Any,
                        ast::ApprovalRule::Sequence => ir::ApprovalRule::Sequence,
                        ast::ApprovalRule::KOfN { k, n } => {
                            let listed = count_roles(clauses);
                            if *k > *n || *k == 0 {
                                self.err(
                                    Diagnostic::error(
                                        Code::E0302,
                                        c.span,
                                        format!("`rule {k} of {n}` can never be met"),
                                    )
                                    .with_label(if *k == 0 {
                                        "needs no approval at all"
                                    } else {
                                        "more approvals than approvers"
                                    })
                                    .with_help("K must be between 1 and N"),
                                );
                            } else if *n as usize != listed {
                                self.err(
                                    Diagnostic::error(
                                        Code::E0110,
                                        c.span,
                                        format!("`rule {k} of {n}` but `by` lists {listed} role(s)"),
                                    )
                                    .with_label(format!("N should be {listed}"))
                                    .with_help("N is the number of roles in `by`"),
                                );
                            }
                            ir::ApprovalRule::AtLeast { k: *k }
                        }
                        ast::ApprovalRule::Fraction { strict, num, den } => {
                            if *den == 0 || *num > *den || (*strict && num == den) {
                                self.err(
                                    Diagnostic::error(
                                        Code::E0302,
                                        c.span,
                                        format!(
                                            "`rule {}{num}/{den}` can never be met",
                                            if *strict { "> " } else { ">= " }
                                        ),
                                    )
                                    .with_label("no share of the approvers reaches this")
                                    .with_help("use a fraction below 1, or `rule all`"),
                                );
                            }
                            ir::ApprovalRule::Fraction { strict: *strict, num: *num, den: *den }
                        }
                    });
                }
                ast::ClauseKind::Due { deadline, roll } => {
                    node.deadline = match deadline {
                        ast::Deadline::Relative { duration, after: None } => {
                            Some(ir::Deadline::AfterOpen { span: span_of(duration), roll: *roll })
                        }
                        ast::Deadline::Relative { duration, after: Some(other) } => {
                            self.step_path(other, unit).map(|d| ir::Deadline::AfterDone {
                                node: d.id.clone(),
                                span: span_of(duration),
                                roll: *roll,
                            })
                        }
                        ast::Deadline::At(e) => self.expr(e, &scope, ctx).map(|(expr, ty)| {
                            self.expect_type(&Type::Date, &ty, e.span, "a deadline");
                            ir::Deadline::At { date: expr }
                        }),
                        ast::Deadline::Amount { amount, unit: u, after } => {
                            node.due_amount = self.amount(amount, &scope, unit);
                            let span = ir::Span { amount: 0, unit: *u };
                            match after {
                                None => Some(ir::Deadline::AfterOpen { span, roll: *roll }),
                                Some(other) => self.step_path(other, unit).map(|d| ir::Deadline::AfterDone {
                                    node: d.id.clone(),
                                    span,
                                    roll: *roll,
                                }),
                            }
                        }
                    };
                    if let (true, Some(ir::Deadline::At { .. })) = (*roll, &node.deadline) {
                        self.err(
                            Diagnostic::error(Code::E0109, c.span, "`roll` applies to a deadline counted in days")
                                .with_label("a fixed date does not roll")
                                .with_help("remove `roll`"),
                        );
                    }
                }
                ast::ClauseKind::Remind(d) => node.reminders.push(span_of(d)),
                ast::ClauseKind::Breach(actions) => self.breach(node, c.span, actions, unit),
                ast::ClauseKind::OnRejected(target) => {
                    node.on_rejected = match target {
                        None => Some(ir::OnRejected::End),
                        Some(t) => self.step_path(t, unit).map(|d| {
                            self.return_spans.insert(node.id.clone(), t.span());
                            ir::OnRejected::Return { node: d.id.clone() }
                        }),
                    };
                }
                ast::ClauseKind::MayReturn { targets, by } => self.may_return(node, c.span, targets, by, unit),
                ast::ClauseKind::UrgeBy(roles) => self.urge_by(node, roles),
                ast::ClauseKind::CopyBy(roles) => self.copy_by(node, roles),
                ast::ClauseKind::Approvers { by, pool, max } => {
                    let declared = |names: &[Ident], this: &mut Self| -> Vec<String> {
                        let mut kept: Vec<String> = Vec::new();
                        for r in names {
                            if this.role(r) && !kept.contains(&r.name) {
                                kept.push(r.name.clone());
                            }
                        }
                        kept
                    };
                    let roles = declared(by, self);
                    let pool = declared(pool, self);
                    // The step starts with its `by`: a bound below that allows no state it is in.
                    if let Some(m) = max.filter(|m| (*m as usize) < node.roles.len().max(1)) {
                        self.err(
                            Diagnostic::error(
                                Code::E0110,
                                c.span,
                                format!("`{}` has {} approvers but may have at most {m}", node.name, node.roles.len()),
                            )
                            .with_label("the most approvers the step may have")
                            .with_help("raise `max` to the approvers of `by` or more"),
                        );
                    }
                    node.approvers = Some(ir::ApproverChanges { roles, pool, max: *max });
                }
                ast::ClauseKind::Transfer { by, restart } => {
                    let has_due = clauses.iter().any(|x| matches!(x.kind, ast::ClauseKind::Due { .. }));
                    self.transfer(node, c.span, by, *restart, has_due)
                }
                ast::ClauseKind::Extend { by, max, approved_by } => {
                    let has_due = clauses.iter().any(|x| matches!(x.kind, ast::ClauseKind::Due { .. }));
                    self.extend(node, c.span, by, max, approved_by, has_due)
                }
                ast::ClauseKind::Owned => {
                    let has_due = clauses.iter().any(|x| matches!(x.kind, ast::ClauseKind::Due { .. }));
                    self.owned(node, c.span, has_due)
                }
                ast::ClauseKind::OnObjection(t) => {
                    node.on_objection = self.step_path(t, unit).map(|d| {
                        self.return_spans.insert(node.id.clone(), t.span());
                        d.id.clone()
                    });
                }
                ast::ClauseKind::Min(d) => {
                    node.min_duration = Some(span_of(d));
                    if let Some(spans) = self.spans.nodes.get_mut(&node.id) {
                        spans.min = Some(c.span);
                    }
                }
                ast::ClauseKind::MinAmount { amount, unit: u } => {
                    // The schedule check counts it as 0 (its amount is known only at start).
                    node.min_amount = self.amount(amount, &scope, unit);
                    node.min_duration = Some(ir::Span { amount: 0, unit: *u });
                }
                ast::ClauseKind::Form(items) => {
                    let mut frame = HashMap::new();
                    for item in items {
                        if let ast::FormItem::Field { name, ty, optional, personal, span } = item {
                            if let Some(first) = frame.get(&name.name).map(|b: &Binding| b.span) {
                                self.duplicate("form field", name, first);
                                continue;
                            }
                            let ty = lower_type(ty);
                            frame.insert(
                                name.name.clone(),
                                Binding { kind: RefKind::Field, id: name.name.clone(), ty: ty.clone(), span: *span },
                            );
                            node.form.push(ir::Field {
                                name: name.name.clone(),
                                ty,
                                optional: *optional,
                                personal: *personal,
                            });
                        }
                    }
                    let fscope = scope.with_frame(frame);
                    for item in items {
                        if let ast::FormItem::Require { condition, message, .. } = item {
                            if let Some((expr, ty)) = self.expr(condition, &fscope, ctx) {
                                self.expect_type(&Type::Bool, &ty, condition.span, "`require`");
                                node.requires.push(ir::Require { condition: expr, message: message.value.clone() });
                            }
                        }
                    }
                    form_scope = Some(fscope);
                }
                ast::ClauseKind::Vote { key, value, message } => {
                    if let Some(m) = message {
                        if matches!(key, ast::VoteKey::Quorum | ast::VoteKey::Slate) {
                            vote_words.insert(*key, m.value.clone());
                        } else {
                            self.err(
                                Diagnostic::error(
                                    Code::E0127,
                                    m.span,
                                    format!("`{}` has no words to give: nothing is refused by it", key.keyword()),
                                )
                                .with_label("not used")
                                .with_help("the rule's words (`else \"R2.14 …\"`) go with `quorum` or `slate`, which refuse a vote"),
                            );
                        }
                    }
                    let vscope = scope.with_frame(vote_frame(*key));
                    let lowered = self.expr(value, &vscope, ctx).map(|(expr, ty)| {
                        let want = match key {
                            ast::VoteKey::Seats | ast::VoteKey::Eligible => Type::Int,
                            ast::VoteKey::Ballot => Type::List { of: Box::new(Type::Text) },
                            _ => Type::Bool,
                        };
                        self.expect_type(&want, &ty, value.span, &format!("`{}`", key.keyword()));
                        expr
                    });
                    vote_parts.insert(*key, (lowered, c.span));
                }
                ast::ClauseKind::UseTemplate(t) => {
                    if self.templates.contains_key(&t.name) {
                        node.template = Some(t.name.clone());
                    } else {
                        let names: Vec<&str> = self.templates.keys().map(String::as_str).collect();
                        let mut d = Diagnostic::error(Code::E0107, t.span, format!("no template named `{}`", t.name))
                            .with_label("not declared");
                        d = match suggest(&t.name, names) {
                            Some(s) => d.with_help(format!("did you mean `{s}`?")),
                            None => d.with_help(format!("declare it with `template {} \"…\"`", t.name)),
                        };
                        self.err(d);
                    }
                }
                ast::ClauseKind::With(_) => {} // lowered by `call`
                ast::ClauseKind::ApproveOnly { condition, message } => {
                    if let Some((expr, ty)) = self.expr(condition, &scope, ctx) {
                        self.expect_type(&Type::Bool, &ty, condition.span, "`approve only when`");
                        node.approve_requires.push(ir::Require { condition: expr, message: message.value.clone() });
                    }
                }
                ast::ClauseKind::Requires { policy, param, value, message } => {
                    let lowered = self.prerequisite(policy, param, value, message, &scope, ctx);
                    node.prerequisites.extend(lowered);
                }
            }
        }
        let _ = form_scope;
        if let Some(step) = step {
            self.required_clauses(node, step, clauses, vote_parts, vote_words);
        }
        scope
    }

    pub(super) fn required_clauses(
        &mut self,
        node: &mut ir::Node,
        step: &ast::Step,
        clauses: &[&ast::Clause],
        mut vote: HashMap<ast::VoteKey, (Option<Expr>, Span)>,
        mut words: HashMap<ast::VoteKey, String>,
    ) {
        let has = |k: &str| clauses.iter().any(|c| c.kind.keyword() == k);
        let missing = |this: &mut Self, what: &str, help: &str| {
            this.err(
                Diagnostic::error(
                    Code::E0110,
                    step.name.span,
                    format!("{} step `{}` has no `{what}`", step.kind.keyword(), step.name.name),
                )
                .with_label(format!("needs `{what}`"))
                .with_help(help.to_string()),
            );
        };
        if !matches!(step.kind, ast::StepKind::Call(_)) && node.roles.is_empty() && !has("by") {
            self.err(
                Diagnostic::error(
                    Code::E0302,
                    step.name.span,
                    format!("no role can complete step `{}`", step.name.name),
                )
                .with_label("no `by` clause")
                .with_help("name the office that acts on it: `by ROLE`"),
            );
        }
        if node.kind == ir::NodeKind::Step(ir::StepKind::Approval) && node.rule.is_none() {
            node.rule = Some(ir::ApprovalRule::All);
        }
        if has("remind") && !has("due") {
            missing(self, "due", "a reminder is sent before a deadline: add `due …`");
        }
        if has("on breach") && !has("due") {
            missing(self, "due", "a breach is a missed deadline: add `due …`");
        }
        if matches!(step.kind, ast::StepKind::Publicity) && !has("min") {
            missing(self, "min", "a public notice (公示) runs for a minimum time: add `min 3 days`");
        }
        if matches!(step.kind, ast::StepKind::Vote) {
            let eligible = vote.remove(&ast::VoteKey::Eligible);
            let elect = vote.remove(&ast::VoteKey::Elect);
            if eligible.is_none() {
                missing(self, "eligible", "say how many may vote: `eligible 党员人数`");
            }
            if elect.is_none() {
                missing(self, "elect", "say who is elected: `elect votes > 1/2 * cast`");
            }
            if let (Some((Some(eligible), _)), Some((Some(elect), _))) = (eligible, elect) {
                node.vote = Some(ir::VoteRules {
                    seats: vote.remove(&ast::VoteKey::Seats).and_then(|x| x.0),
                    eligible,
                    quorum: vote.remove(&ast::VoteKey::Quorum).and_then(|x| x.0),
                    slate: vote.remove(&ast::VoteKey::Slate).and_then(|x| x.0),
                    ballot: vote.remove(&ast::VoteKey::Ballot).and_then(|x| x.0),
                    elect,
                    quorum_words: words.remove(&ast::VoteKey::Quorum),
                    slate_words: words.remove(&ast::VoteKey::Slate),
                });
            }
        }
    }
}

pub(super) fn vote_frame(key: ast::VoteKey) -> HashMap<String, Binding> {
    let names: &[&str] = match key {
        ast::VoteKey::Seats | ast::VoteKey::Eligible | ast::VoteKey::Ballot => &[],
        ast::VoteKey::Quorum => &["eligible", "present", "cast", "invalid", "seats"],
        ast::VoteKey::Slate => &["candidates", "seats", "eligible"],
        ast::VoteKey::Elect => &["votes", "cast", "invalid", "present", "eligible", "seats", "candidates"],
    };
    names
        .iter()
        .map(|n| {
            (n.to_string(), Binding { kind: RefKind::Vote, id: n.to_string(), ty: Type::Int, span: Span::default() })
        })
        .collect()
}

/// The fields a step's `form` declares.
pub(super) fn form_fields(step: &ast::Step) -> Vec<(String, Type)> {
    step.clauses
        .iter()
        .filter_map(|c| if let ast::ClauseKind::Form(items) = &c.kind { Some(items) } else { None })
        .flatten()
        .filter_map(|i| match i {
            ast::FormItem::Field { name, ty, .. } => Some((name.name.clone(), lower_type(ty))),
            ast::FormItem::Require { .. } => None,
        })
        .collect()
}

pub(super) fn count_roles(clauses: &[&ast::Clause]) -> usize {
    clauses.iter().find_map(|c| if let ast::ClauseKind::By(r) = &c.kind { Some(r.len()) } else { None }).unwrap_or(0)
}

pub(super) fn clause_allowed(c: &ast::ClauseKind, kind: ir::NodeKind) -> bool {
    use ast::ClauseKind as C;
    use ir::NodeKind as N;
    use ir::StepKind as S;
    match c {
        C::After(_) | C::AfterAny(_) | C::Window { .. } | C::When(_) => true,
        C::By(_)
        | C::Min(_)
        | C::MinAmount { .. }
        | C::Form(_)
        | C::UseTemplate(_)
        | C::For { .. }
        | C::Requires { .. }
        | C::MayReturn { .. }
        | C::UrgeBy(_)
        | C::CopyBy(_)
        | C::Extend { .. }
        | C::Transfer { .. }
        | C::Owned => {
            matches!(kind, N::Step(_))
        }
        // A sub-procedure may have a deadline for the whole of it.
        C::Due { .. } | C::Remind(_) | C::Breach(_) => matches!(kind, N::Step(_) | N::Call),
        C::Rule(_) | C::OnRejected(_) | C::ApproveOnly { .. } | C::Approvers { .. } => kind == N::Step(S::Approval),
        C::OnObjection(_) => kind == N::Step(S::Publicity),
        C::Vote { .. } => kind == N::Step(S::Vote),
        C::With(_) => kind == N::Call,
    }
}

pub(super) fn clause_help(c: &ast::ClauseKind) -> &'static str {
    use ast::ClauseKind as C;
    match c {
        C::Rule(_) | C::OnRejected(_) => "only an `approval` step has an approval rule and a rejection branch",
        C::OnObjection(_) => "only a `publicity` step takes objections",
        C::Vote { .. } => "only a `vote` step has seats, quorum and election rules",
        C::With(_) => "only a `call` step passes arguments",
        _ => "put it on a step inside the phase",
    }
}

pub(super) fn span_of(d: &ast::Duration) -> ir::Span {
    ir::Span { amount: d.amount, unit: d.unit }
}
