//! AST → IR: name resolution, type checks and lowering in one walk, accumulating every
//! diagnostic (E01xx names, E02xx types, E03xx structure). Sub-procedures are inlined at each
//! `call` step, their ids prefixed with the calling step's id.
//!
//! The walk never stops at the first problem: a bad expression lowers to `None` and its node is
//! still produced, so later checks see the whole policy.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use num_bigint::BigInt;
use num_rational::BigRational;

use crate::ast::{self, Ident, Item, Span};
use crate::diag::{suggest, Code, Diagnostic};
use crate::eval::{self, Env, EvalError};
use crate::ir::{self, Expr, Func, RefKind, Type};
use crate::value::{parse_rational, Value};

use self::clauses::{form_fields, span_of};
use self::expr::{assignable, is_number};

mod binding;
mod breach;
mod clauses;
mod cycles;
mod expr;
mod params;
mod paths;
mod returns;
mod structure;
#[cfg(test)]
mod tests;

/// Arguments of a `call`, lowered in the caller's scope: expression, type, constant, span.
type CallArgs = BTreeMap<String, (Expr, Type, bool, Span)>;

/// Where things are in the source, by node id, for later stages' diagnostics.
#[derive(Clone, Debug, Default)]
pub struct SpanTable {
    pub nodes: HashMap<String, NodeSpans>,
}

#[derive(Clone, Debug, Default)]
pub struct NodeSpans {
    /// The node's name where it is declared.
    pub name: Span,
    pub window: Option<Span>,
    pub min: Option<Span>,
    /// `after` dependencies: (dependency node id, span of the dependency).
    pub after: Vec<(String, Span)>,
}

/// Result of the walk: the IR (built even when there are errors, for later checks) and the
/// diagnostics found.
pub struct Checked {
    pub policy: ir::Policy,
    pub spans: SpanTable,
    pub diagnostics: Vec<Diagnostic>,
    /// Values of constants and of derived values that depend on nothing but constants.
    pub constants: BTreeMap<String, Value>,
}

pub fn check(file: &ast::File) -> Checked {
    let mut c = Checker::default();
    c.policy(&file.policy);
    structure::check(&mut c);
    returns::check(&mut c);
    breach::check(&mut c);
    let Checker { out, spans, diags, constants, .. } = c;
    let mut seen = BTreeSet::new();
    let mut diagnostics: Vec<Diagnostic> =
        diags.into_iter().filter(|d| seen.insert((d.code, d.span.start, d.span.end, d.message.clone()))).collect();
    diagnostics.sort_by_key(|d| (d.span.start, d.code));
    Checked { policy: out, spans, diagnostics, constants }
}

#[derive(Clone, Debug)]
struct Binding {
    kind: RefKind,
    id: String,
    ty: Type,
    span: Span,
}

/// Names visible to an expression: innermost last.
#[derive(Clone, Debug, Default)]
struct Scope {
    frames: Vec<HashMap<String, Binding>>,
}

impl Scope {
    fn get(&self, name: &str) -> Option<&Binding> {
        self.frames.iter().rev().find_map(|f| f.get(name))
    }
    fn names(&self) -> Vec<String> {
        self.frames.iter().flat_map(|f| f.keys().cloned()).collect()
    }
    fn with_frame(&self, frame: HashMap<String, Binding>) -> Scope {
        let mut s = self.clone();
        s.frames.push(frame);
        s
    }
}

/// A step or phase of one unit (the policy body, or one call of a procedure).
#[derive(Clone, Debug)]
pub(crate) struct Decl {
    pub id: String,
    pub span: Span,
    /// The step's form fields, which later steps may read as `STEP.field`.
    pub form: Vec<(String, Type)>,
    /// The procedure a `call` step runs (its steps are named `STEP.inner` from outside).
    pub call: Option<String>,
}

/// One unit's name → node map; `after`, `return` and `start()/end()` resolve here.
type Unit = HashMap<String, Decl>;

#[derive(Default)]
pub(crate) struct Checker {
    pub(crate) out: ir::Policy,
    pub(crate) spans: SpanTable,
    pub(crate) diags: Vec<Diagnostic>,
    pub(crate) constants: BTreeMap<String, Value>,
    roles: BTreeMap<String, Span>,
    templates: BTreeMap<String, Span>,
    procedures: BTreeMap<String, ast::Procedure>,
    /// Procedures being inlined, to refuse recursion.
    call_stack: Vec<String>,
    /// Unit of every node id (by the unit's prefix), for the structural checks.
    pub(crate) units: Vec<Unit>,
    /// Spans of `on rejected return X` / `on objection return X`, by node id.
    pub(crate) return_spans: HashMap<String, Span>,
    /// Spans of the `return X` target or `reassign R` role of an `on breach`, by node id ([`breach`]).
    pub(crate) breach_spans: HashMap<String, Span>,
    /// Spans of `transfer by`, by node id: checked once the roles' bindings are known.
    pub(crate) transfer_spans: HashMap<String, Span>,
    /// `may return` pairs with their spans, for [`returns::check`].
    pub(crate) declared_returns: Vec<returns::Declared>,
    /// Procedure parameters bound to what the procedure itself cannot know at start (a field
    /// another step records, `居委会换届.推选成员代表.居民代表人数`): the argument is used in
    /// place of the parameter, evaluated when it is needed (R2.20).
    inline: HashMap<String, Expr>,
    /// Spans of `when` clauses whose condition is constantly false.
    pub(crate) never: Vec<(String, Span)>,
    /// The element type of each fan-out (`for x in LIST`), by node id, for `bound by item`.
    pub(crate) item_types: HashMap<String, Type>,
}

impl Default for ir::Policy {
    fn default() -> Self {
        ir::Policy {
            name: String::new(),
            title: None,
            version: None,
            timezone: "Asia/Shanghai".into(),
            calendar: "cn".into(),
            params: Vec::new(),
            values: Vec::new(),
            roles: Vec::new(),
            templates: Vec::new(),
            nodes: Vec::new(),
            edges: Vec::new(),
            timers: Vec::new(),
            recurrence: None,
            cycles: Vec::new(),
            quotas: Vec::new(),
        }
    }
}

/// What an expression is allowed to see besides its scope.
#[derive(Clone, Copy)]
struct Ctx<'u> {
    unit: Option<&'u Unit>,
}

impl Checker {
    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn policy(&mut self, p: &ast::Policy) {
        self.out.name = p.name.name.clone();
        let mut headers: HashMap<ast::HeaderKey, Span> = HashMap::new();
        for item in &p.items {
            match item {
                Item::Header(h) => {
                    if let Some(first) = headers.insert(h.key, h.span) {
                        self.err(
                            Diagnostic::error(Code::E0108, h.span, format!("`{}` is given twice", h.key.keyword()))
                                .with_label("second time")
                                .with_secondary(first, "first given here")
                                .with_help("keep one"),
                        );
                        continue;
                    }
                    let v = h.value.value.clone();
                    match h.key {
                        ast::HeaderKey::Title => self.out.title = Some(v),
                        ast::HeaderKey::Version => self.out.version = Some(v),
                        ast::HeaderKey::Timezone => self.out.timezone = v,
                        ast::HeaderKey::Calendar => self.out.calendar = v,
                    }
                }
                Item::Role(r) => {
                    if let Some(first) = self.roles.get(&r.name.name) {
                        let first = *first;
                        self.duplicate("role", &r.name, first);
                    } else {
                        self.roles.insert(r.name.name.clone(), r.name.span);
                        self.out.roles.push(ir::Role {
                            name: r.name.name.clone(),
                            description: r.description.as_ref().map(|d| d.value.clone()),
                            bound: None, // resolved by `role_bindings` once the steps are known
                            oversight: r.oversight,
                            may_suspend: r.may_suspend,
                            may_correct: r.may_correct,
                        });
                    }
                }
                Item::Template(t) => {
                    if let Some(first) = self.templates.get(&t.name.name) {
                        let first = *first;
                        self.duplicate("template", &t.name, first);
                        continue;
                    }
                    self.templates.insert(t.name.name.clone(), t.name.span);
                    if let Err(problem) = crate::template::check(&t.body.value) {
                        self.err(template_diagnostic(&t.name.name, t.body.span, &problem));
                    }
                    self.out.templates.push(ir::Template { name: t.name.name.clone(), source: t.body.value.clone() });
                }
                Item::Procedure(proc_) => {
                    if let Some(first) = self.procedures.get(&proc_.name.name) {
                        let first = first.name.span;
                        self.duplicate("procedure", &proc_.name, first);
                    } else {
                        self.procedures.insert(proc_.name.name.clone(), proc_.clone());
                    }
                }
                _ => {}
            }
        }
        let scope = self.bindings(&p.items, "", &Scope::default(), None);
        self.unit(&p.items, "", None, &scope);
        self.cycles(p, &scope);
        self.role_bindings(p);
    }

    fn duplicate(&mut self, what: &str, name: &Ident, first: Span) {
        self.err(
            Diagnostic::error(Code::E0101, name.span, format!("{what} `{}` is declared twice", name.name))
                .with_label("declared again here")
                .with_secondary(first, "first declared here")
                .with_help(format!("rename one of them or remove the second `{}`", name.name)),
        );
    }

    /// Params, constants and lets of a policy or procedure. For a procedure call, `args` are the
    /// call's `with` bindings, already lowered in the caller's scope.
    fn bindings(&mut self, items: &[Item], prefix: &str, outer: &Scope, mut args: Option<&mut CallArgs>) -> Scope {
        let mut frame: HashMap<String, Binding> = HashMap::new();
        for item in items {
            let (name, span) = match item {
                Item::Param(p) => (&p.name, p.span),
                Item::Const(b) | Item::Let(b) => (&b.name, b.span),
                _ => continue,
            };
            if let Some(first) = frame.get(&name.name) {
                let first = first.span;
                self.duplicate("name", name, first);
                continue;
            }
            let id = format!("{prefix}{}", name.name);
            let scope = outer.with_frame(frame.clone());
            let binding = match item {
                Item::Param(p) => {
                    let ty = lower_type(&p.ty);
                    let default =
                        p.default.as_ref().and_then(|d| self.constant_value(d, &ty, &scope, "a parameter's default"));
                    let range = self.param_range(p, &ty, default.as_ref(), args.is_some());
                    match args.as_deref_mut() {
                        // A procedure parameter becomes a derived value bound by the call.
                        Some(args) => {
                            let constant;
                            match args.remove(&p.name.name) {
                                Some((expr, arg_ty, is_const, arg_span)) => {
                                    self.expect_type(&ty, &arg_ty, arg_span, &format!("argument `{}`", p.name.name));
                                    constant = is_const;
                                    if params::known_at_start(&expr) {
                                        self.out.values.push(ir::Derived { id: id.clone(), ty: ty.clone(), expr });
                                    } else {
                                        self.inline.insert(id.clone(), expr);
                                    }
                                }
                                None => {
                                    match default {
                                        Some(v) => {
                                            constant = true;
                                            self.out.values.push(ir::Derived {
                                                id: id.clone(),
                                                ty: ty.clone(),
                                                expr: Expr::Lit { value: v },
                                            });
                                        }
                                        None => {
                                            constant = false;
                                            self.err(
                                            Diagnostic::error(Code::E0110, p.name.span, format!("procedure parameter `{}` is not given by the call", p.name.name))
                                                .with_label("needs a value")
                                                .with_help(format!("add `with {} = …` to the `call` step, or give the parameter a default", p.name.name)),
                                        );
                                        }
                                    }
                                }
                            }
                            if constant {
                                self.fold(&id, p.span);
                            }
                            Binding { kind: RefKind::Value, id, ty, span }
                        }
                        None => {
                            self.out.params.push(ir::Param { id: id.clone(), ty: ty.clone(), default, range });
                            Binding { kind: RefKind::Param, id, ty, span }
                        }
                    }
                }
                Item::Const(b) | Item::Let(b) => {
                    let is_const = matches!(item, Item::Const(_));
                    let ty = lower_type(&b.ty);
                    let lowered = self.expr_expecting(&b.value, &scope, Ctx { unit: None }, Some(&ty));
                    if let Some((expr, got)) = lowered {
                        self.expect_type(&ty, &got, b.value.span, &format!("`{}`", b.name.name));
                        let constant = self.is_constant(&expr);
                        if is_const && !constant {
                            self.err(
                                Diagnostic::error(
                                    Code::E0203,
                                    b.value.span,
                                    format!("constant `{}` depends on a parameter", b.name.name),
                                )
                                .with_label("not known when the policy is compiled")
                                .with_help(format!("declare it with `let {}` instead", b.name.name)),
                            );
                        }
                        self.out.values.push(ir::Derived { id: id.clone(), ty: ty.clone(), expr });
                        if constant {
                            self.fold(&id, b.value.span);
                        }
                    }
                    Binding { kind: RefKind::Value, id, ty, span }
                }
                _ => continue,
            };
            frame.insert(name.name.clone(), binding);
        }
        outer.with_frame(frame)
    }

    /// Evaluates a constant derived value and remembers it; reports division by zero.
    fn fold(&mut self, id: &str, span: Span) -> bool {
        let Some(d) = self.out.values.iter().find(|d| d.id == id) else {
            return false;
        };
        let expr = d.expr.clone();
        let env = ConstEnv { values: &self.constants };
        match eval::eval(&expr, &env) {
            Ok(v) => {
                self.constants.insert(id.to_string(), v);
                true
            }
            Err(EvalError::DivisionByZero) => {
                self.err(Diagnostic::error(Code::E0205, span, "division by zero").with_label("this divides by zero"));
                false
            }
            Err(_) => false,
        }
    }

    fn constant_value(&mut self, e: &ast::Expr, ty: &Type, scope: &Scope, what: &str) -> Option<Value> {
        let (expr, got) = self.expr_expecting(e, scope, Ctx { unit: None }, Some(ty))?;
        self.expect_type(ty, &got, e.span, what);
        if !self.is_constant(&expr) {
            self.err(
                Diagnostic::error(Code::E0203, e.span, format!("{what} must be a constant"))
                    .with_label("depends on something known only when an instance runs"),
            );
            return None;
        }
        let env = ConstEnv { values: &self.constants };
        match eval::eval(&expr, &env) {
            Ok(v) => Some(v),
            Err(EvalError::DivisionByZero) => {
                self.err(Diagnostic::error(Code::E0205, e.span, "division by zero").with_label("this divides by zero"));
                None
            }
            Err(_) => None,
        }
    }

    fn is_constant(&self, e: &Expr) -> bool {
        match e {
            Expr::Lit { .. } => true,
            Expr::Ref { kind: RefKind::Value, id } => self.constants.contains_key(id),
            Expr::Ref { .. } | Expr::NodeTime { .. } | Expr::NodeField { .. } => false,
            Expr::Field { of, .. } => self.is_constant(of),
            Expr::List { items } => items.iter().all(|i| self.is_constant(i)),
            Expr::Call { args, .. } => args.iter().all(|i| self.is_constant(i)),
            Expr::Unary { arg, .. } => self.is_constant(arg),
            Expr::Binary { lhs, rhs, .. } => self.is_constant(lhs) && self.is_constant(rhs),
            Expr::If { cond, then, otherwise } => {
                self.is_constant(cond) && self.is_constant(then) && self.is_constant(otherwise)
            }
            Expr::Match { scrutinee, arms } => {
                self.is_constant(scrutinee) && arms.iter().all(|a| self.is_constant(&a.value))
            }
        }
    }

    fn expect_type(&mut self, want: &Type, got: &Type, span: Span, what: &str) {
        if !assignable(want, got) {
            let mut d =
                Diagnostic::error(Code::E0201, span, format!("{what} is declared `{want}` but this is `{got}`"))
                    .with_label(format!("`{got}` here"));
            if *want == Type::Int && *got == Type::Decimal {
                d = d.with_help("division gives an exact fraction: round it with `floor(…)` or `ceil(…)`");
            }
            self.err(d);
        }
    }

    // ---- nodes --------------------------------------------------------------------------------

    /// Lowers the phases and steps of one unit.
    fn unit(&mut self, items: &[Item], prefix: &str, parent: Option<&str>, scope: &Scope) {
        let mut unit = Unit::new();
        self.collect(items, prefix, &mut unit);
        self.nodes(items, prefix, parent, scope, &unit);
        self.units.push(unit);
    }

    fn collect(&mut self, items: &[Item], path: &str, unit: &mut Unit) {
        for item in items {
            let (name, children, form) = match item {
                Item::Phase(p) => (&p.name, Some(&p.items), Vec::new()),
                Item::Step(s) => (&s.name, None, form_fields(s)),
                _ => continue,
            };
            if let Some(first) = unit.get(&name.name) {
                let first = first.span;
                self.duplicate("step or phase", name, first);
                continue;
            }
            let id = format!("{path}{}", name.name);
            let call = match item {
                Item::Step(ast::Step { kind: ast::StepKind::Call(p), .. }) => Some(p.name.clone()),
                _ => None,
            };
            unit.insert(name.name.clone(), Decl { id: id.clone(), span: name.span, form, call });
            if let Some(children) = children {
                self.collect(children, &format!("{id}/"), unit);
            }
        }
    }

    fn nodes(&mut self, items: &[Item], path: &str, parent: Option<&str>, scope: &Scope, unit: &Unit) {
        for item in items {
            match item {
                Item::Phase(p) => {
                    let id = format!("{path}{}", p.name.name);
                    if self.spans.nodes.contains_key(&id) {
                        continue; // a duplicate, reported in `collect`
                    }
                    let clauses: Vec<&ast::Clause> =
                        p.items.iter().filter_map(|i| if let Item::Clause(c) = i { Some(c) } else { None }).collect();
                    let mut node = empty_node(&id, &p.name.name, p.title.as_ref(), ir::NodeKind::Phase, parent);
                    self.spans.nodes.insert(id.clone(), NodeSpans { name: p.name.span, ..Default::default() });
                    self.clauses(&mut node, &clauses, None, scope, unit);
                    self.push_node(node);
                    self.nodes(&p.items, &format!("{id}/"), Some(&id), scope, unit);
                }
                Item::Step(s) => {
                    let id = format!("{path}{}", s.name.name);
                    if self.spans.nodes.contains_key(&id) {
                        continue;
                    }
                    let kind = node_kind(&s.kind);
                    let mut node = empty_node(&id, &s.name.name, s.title.as_ref(), kind, parent);
                    self.spans.nodes.insert(id.clone(), NodeSpans { name: s.name.span, ..Default::default() });
                    let clauses: Vec<&ast::Clause> = s.clauses.iter().collect();
                    let step_scope = self.clauses(&mut node, &clauses, Some(s), scope, unit);
                    self.push_node(node);
                    if let ast::StepKind::Call(proc_name) = &s.kind {
                        self.call(s, proc_name, &id, &step_scope, unit);
                    }
                }
                _ => {}
            }
        }
    }

    fn push_node(&mut self, node: ir::Node) {
        if let Some(parent) = &node.parent {
            self.out.edges.push(ir::Edge { from: parent.clone(), to: node.id.clone(), on: ir::Trigger::Contains });
        }
        for dep in node.after.iter().chain(&node.after_any) {
            let on = match dep.outcome {
                None => ir::Trigger::Done,
                Some(ast::Outcome::Approved) => ir::Trigger::Approved,
                Some(ast::Outcome::Rejected) => ir::Trigger::Rejected,
            };
            self.out.edges.push(ir::Edge { from: dep.node.clone(), to: node.id.clone(), on });
        }
        if let Some(ir::OnRejected::Return { node: target }) = &node.on_rejected {
            self.out.edges.push(ir::Edge {
                from: node.id.clone(),
                to: target.clone(),
                on: ir::Trigger::ReturnOnRejection,
            });
        }
        if let Some(target) = &node.on_objection {
            self.out.edges.push(ir::Edge {
                from: node.id.clone(),
                to: target.clone(),
                on: ir::Trigger::ReturnOnObjection,
            });
        }
        for a in &node.on_breach {
            if let ir::BreachAction::Return { node: target } = a {
                self.out.edges.push(ir::Edge {
                    from: node.id.clone(),
                    to: target.clone(),
                    on: ir::Trigger::ReturnOnBreach,
                });
            }
        }
        for t in node.returns.iter().flat_map(|r| &r.targets) {
            let edge = ir::Edge { from: node.id.clone(), to: t.clone(), on: ir::Trigger::MayReturn };
            if !self.out.edges.contains(&edge) {
                self.out.edges.push(edge);
            }
        }
        let timer = |kind, before| ir::TimerSpec { node: node.id.clone(), kind, before };
        if node.window.is_some() {
            self.out.timers.push(timer(ir::TimerKind::WindowOpens, None));
            self.out.timers.push(timer(ir::TimerKind::WindowCloses, None));
        }
        if node.deadline.is_some() {
            self.out.timers.push(timer(ir::TimerKind::Due, None));
            for r in &node.reminders {
                self.out.timers.push(timer(ir::TimerKind::Reminder, Some(*r)));
            }
        }
        if node.min_duration.is_some() {
            self.out.timers.push(timer(ir::TimerKind::MinDurationEnds, None));
        }
        self.out.nodes.push(node);
    }

    fn call(&mut self, step: &ast::Step, proc_name: &Ident, id: &str, caller_scope: &Scope, caller_unit: &Unit) {
        let Some(procedure) = self.procedures.get(&proc_name.name).cloned() else {
            let names: Vec<&str> = self.procedures.keys().map(String::as_str).collect();
            let mut d =
                Diagnostic::error(Code::E0106, proc_name.span, format!("no procedure named `{}`", proc_name.name))
                    .with_label("not declared");
            d = match suggest(&proc_name.name, names) {
                Some(s) => d.with_help(format!("did you mean `{s}`?")),
                None => d.with_help(format!("declare it with `procedure {} {{ … }}`", proc_name.name)),
            };
            self.err(d);
            return;
        };
        if self.call_stack.contains(&procedure.name.name) {
            let chain = format!("{} → {}", self.call_stack.join(" → "), procedure.name.name);
            self.err(
                Diagnostic::error(
                    Code::E0301,
                    proc_name.span,
                    format!("procedure `{}` calls itself: {chain}", procedure.name.name),
                )
                .with_label("recursive call")
                .with_help("a procedure runs a fixed set of steps; use `recur` for repetition"),
            );
            return;
        }
        // Arguments are lowered in the caller's scope.
        let mut args = BTreeMap::new();
        let params: BTreeSet<&str> = procedure
            .items
            .iter()
            .filter_map(|i| if let Item::Param(p) = i { Some(p.name.name.as_str()) } else { None })
            .collect();
        for clause in &step.clauses {
            if let ast::ClauseKind::With(bindings) = &clause.kind {
                for (name, value) in bindings {
                    if !params.contains(name.name.as_str()) {
                        let mut d = Diagnostic::error(
                            Code::E0104,
                            name.span,
                            format!("procedure `{}` has no parameter `{}`", procedure.name.name, name.name),
                        )
                        .with_label("unknown parameter");
                        if let Some(s) = suggest(&name.name, params.iter().copied()) {
                            d = d.with_help(format!("did you mean `{s}`?"));
                        }
                        self.err(d);
                        continue;
                    }
                    if args.contains_key(&name.name) {
                        self.err(
                            Diagnostic::error(Code::E0108, name.span, format!("`{}` is given twice", name.name))
                                .with_label("second time"),
                        );
                        continue;
                    }
                    if let Some((expr, ty)) = self.expr(value, caller_scope, Ctx { unit: Some(caller_unit) }) {
                        let constant = self.is_constant(&expr);
                        args.insert(name.name.clone(), (expr, ty, constant, value.span));
                    }
                }
            }
        }
        self.call_stack.push(procedure.name.name.clone());
        let prefix = format!("{id}/");
        // A procedure sees the policy's top-level names (the first frame) and its own.
        let base = Scope { frames: caller_scope.frames.iter().take(1).cloned().collect() };
        let scope = self.bindings(&procedure.items, &prefix, &base, Some(&mut args));
        self.unit(&procedure.items, &prefix, Some(id), &scope);
        self.call_stack.pop();
    }

    fn role(&mut self, r: &Ident) -> bool {
        if self.roles.contains_key(&r.name) {
            return true;
        }
        let names: Vec<&str> = self.roles.keys().map(String::as_str).collect();
        let mut d =
            Diagnostic::error(Code::E0102, r.span, format!("no role named `{}`", r.name)).with_label("unknown role");
        d = match suggest(&r.name, names) {
            Some(s) => d.with_help(format!("did you mean `{s}`?")),
            None => d.with_help(format!("declare it with `role {}`", r.name)),
        };
        self.err(d);
        false
    }

    fn node_ref(&mut self, name: &Ident, unit: &Unit, _from: &str) -> Option<Decl> {
        if let Some(d) = unit.get(&name.name) {
            return Some(d.clone());
        }
        let names: Vec<&str> = unit.keys().map(String::as_str).collect();
        let mut d = Diagnostic::error(Code::E0103, name.span, format!("no step or phase named `{}`", name.name))
            .with_label("unknown step");
        d = match suggest(&name.name, names) {
            Some(s) => d.with_help(format!("did you mean `{s}`?")),
            None => d.with_help("steps are named where declared: `step NAME: KIND`"),
        };
        self.err(d);
        None
    }

    // ---- expressions --------------------------------------------------------------------------
}

/// Constants known so far, for folding.
struct ConstEnv<'a> {
    values: &'a BTreeMap<String, Value>,
}

impl Env for ConstEnv<'_> {
    fn lookup(&self, kind: RefKind, id: &str) -> Option<Value> {
        (kind == RefKind::Value).then(|| self.values.get(id).cloned()).flatten()
    }
}

fn node_kind(k: &ast::StepKind) -> ir::NodeKind {
    use ir::StepKind as S;
    match k {
        ast::StepKind::Task => ir::NodeKind::Step(S::Task),
        ast::StepKind::Approval => ir::NodeKind::Step(S::Approval),
        ast::StepKind::Filing => ir::NodeKind::Step(S::Filing),
        ast::StepKind::Consultation => ir::NodeKind::Step(S::Consultation),
        ast::StepKind::Publicity => ir::NodeKind::Step(S::Publicity),
        ast::StepKind::Vote => ir::NodeKind::Step(S::Vote),
        ast::StepKind::Meeting => ir::NodeKind::Step(S::Meeting),
        ast::StepKind::Call(_) => ir::NodeKind::Call,
    }
}

fn empty_node(id: &str, name: &str, title: Option<&ast::Str>, kind: ir::NodeKind, parent: Option<&str>) -> ir::Node {
    ir::Node {
        id: id.to_string(),
        name: name.to_string(),
        title: title.map(|t| t.value.clone()),
        kind,
        parent: parent.map(str::to_string),
        roles: Vec::new(),
        rule: None,
        after: Vec::new(),
        guard: None,
        window: None,
        for_each: None,
        deadline: None,
        reminders: Vec::new(),
        on_breach: Vec::new(),
        min_duration: None,
        form: Vec::new(),
        requires: Vec::new(),
        prerequisites: Vec::new(),
        vote: None,
        template: None,
        on_rejected: None,
        on_objection: None,
        due_amount: None,
        min_amount: None,
        approve_requires: Vec::new(),
        after_any: Vec::new(),
        returns: Vec::new(),
        urge_by: Vec::new(),
        copy_by: Vec::new(),
        owned: false,
        extend: None,
        transfer: None,
        approvers: None,
    }
}

pub(crate) fn lower_type(t: &ast::TypeExpr) -> Type {
    match &t.kind {
        ast::TypeKind::Int => Type::Int,
        ast::TypeKind::Decimal => Type::Decimal,
        ast::TypeKind::Text => Type::Text,
        ast::TypeKind::Date => Type::Date,
        ast::TypeKind::Bool => Type::Bool,
        ast::TypeKind::List(of) => Type::List { of: Box::new(lower_type(of)) },
        ast::TypeKind::Record(fields) => {
            Type::Record { fields: fields.iter().map(|(n, t)| (n.name.clone(), lower_type(t))).collect() }
        }
    }
}

/// The diagnostic for a template [`crate::template::check`] refuses.
fn template_diagnostic(name: &str, span: Span, problem: &crate::template::TemplateProblem) -> Diagnostic {
    use crate::template::{TemplateProblem as P, MAX_NESTING};
    let (code, help) = match problem {
        P::Invalid(_) => {
            (Code::E0107, "check that every `{{#each}}` / `{{#if}}` is closed and braces are balanced".to_string())
        }
        P::Recursive { .. } => {
            (Code::E0124, "repeat with `{{#each LIST}}` over a list instead of a partial that includes itself".into())
        }
        P::DynamicPartial => (Code::E0124, "name the partial plainly: `{{> name}}`".into()),
        P::TooDeep { .. } => (
            Code::E0125,
            format!("nest blocks at most {MAX_NESTING} deep: split the notice, or use `{{{{else}}}}` chains"),
        ),
        P::TooLarge => (Code::E0125, "use each partial fewer times, or repeat with `{{#each}}` over the data".into()),
        P::UnknownPartial { name } => {
            (Code::E0126, format!("define it in this template: `{{{{#*inline \"{name}\"}}}}…{{{{/inline}}}}`"))
        }
    };
    let message = match problem {
        P::Invalid(_) => format!("template `{name}` is not valid handlebars"),
        other => format!("template `{name}`: {other}"),
    };
    let label = match problem {
        P::Invalid(e) => e.clone(),
        P::Recursive { .. } | P::DynamicPartial | P::UnknownPartial { .. } => "a notice must always render".into(),
        P::TooDeep { .. } | P::TooLarge => "too costly to render".into(),
    };
    Diagnostic::error(code, span, message).with_label(label).with_help(help)
}
