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

mod binding;
mod breach;
mod cycles;
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
                    if let Err(e) = handlebars::Template::compile(&t.body.value) {
                        self.err(
                            Diagnostic::error(
                                Code::E0107,
                                t.body.span,
                                format!("template `{}` is not valid handlebars", t.name.name),
                            )
                            .with_label(e.to_string().lines().next().unwrap_or("").to_string())
                            .with_help("check that every `{{#each}}` / `{{#if}}` is closed and braces are balanced"),
                        );
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

    /// Lowers the clauses of a node; returns the scope its expressions saw (with fan-out var).
    fn clauses(
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
                ast::ClauseKind::Vote { key, value } => {
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
            self.required_clauses(node, step, clauses, vote_parts);
        }
        scope
    }

    fn required_clauses(
        &mut self,
        node: &mut ir::Node,
        step: &ast::Step,
        clauses: &[&ast::Clause],
        mut vote: HashMap<ast::VoteKey, (Option<Expr>, Span)>,
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
                });
            }
        }
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

    fn expr(&mut self, e: &ast::Expr, scope: &Scope, ctx: Ctx) -> Option<(Expr, Type)> {
        self.expr_expecting(e, scope, ctx, None)
    }

    fn expr_expecting(
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

    fn date(&mut self, text: &str, span: Span) -> Option<NaiveDate> {
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

    fn call_expr(
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

    fn match_expr(
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

    fn pattern(&mut self, p: &ast::Pattern, ty: &Type) -> Option<ir::Pattern> {
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
    fn coverage(&mut self, e: &ast::Expr, arms: &[ast::MatchArm], lowered: &[ir::Arm]) {
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

fn max_opt(a: &Option<BigRational>, b: &Option<BigRational>) -> Option<BigRational> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if x > y { x.clone() } else { y.clone() }),
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (None, None) => None,
    }
}

fn min_opt(a: &Option<BigRational>, b: &Option<BigRational>) -> Option<BigRational> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if x < y { x.clone() } else { y.clone() }),
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (None, None) => None,
    }
}

fn last_day(y: i32, m: u32) -> u32 {
    (28..=31).rev().find(|d| NaiveDate::from_ymd_opt(y, m, *d).is_some()).unwrap_or(28)
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

fn vote_frame(key: ast::VoteKey) -> HashMap<String, Binding> {
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
fn form_fields(step: &ast::Step) -> Vec<(String, Type)> {
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

fn count_roles(clauses: &[&ast::Clause]) -> usize {
    clauses.iter().find_map(|c| if let ast::ClauseKind::By(r) = &c.kind { Some(r.len()) } else { None }).unwrap_or(0)
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
        owned: false,
    }
}

fn clause_allowed(c: &ast::ClauseKind, kind: ir::NodeKind) -> bool {
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
        | C::Owned => {
            matches!(kind, N::Step(_))
        }
        // A sub-procedure may have a deadline for the whole of it.
        C::Due { .. } | C::Remind(_) | C::Breach(_) => matches!(kind, N::Step(_) | N::Call),
        C::Rule(_) | C::OnRejected(_) | C::ApproveOnly { .. } => kind == N::Step(S::Approval),
        C::OnObjection(_) => kind == N::Step(S::Publicity),
        C::Vote { .. } => kind == N::Step(S::Vote),
        C::With(_) => kind == N::Call,
    }
}

fn clause_help(c: &ast::ClauseKind) -> &'static str {
    use ast::ClauseKind as C;
    match c {
        C::Rule(_) | C::OnRejected(_) => "only an `approval` step has an approval rule and a rejection branch",
        C::OnObjection(_) => "only a `publicity` step takes objections",
        C::Vote { .. } => "only a `vote` step has seats, quorum and election rules",
        C::With(_) => "only a `call` step passes arguments",
        _ => "put it on a step inside the phase",
    }
}

fn span_of(d: &ast::Duration) -> ir::Span {
    ir::Span { amount: d.amount, unit: d.unit }
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

fn is_number(t: &Type) -> bool {
    matches!(t, Type::Int | Type::Decimal)
}

/// The common type of two, with `int` widening to `decimal`.
fn unify(a: &Type, b: &Type) -> Option<Type> {
    match (a, b) {
        _ if a == b => Some(a.clone()),
        (Type::Int, Type::Decimal) | (Type::Decimal, Type::Int) => Some(Type::Decimal),
        (Type::List { of: x }, Type::List { of: y }) => unify(x, y).map(|u| Type::List { of: Box::new(u) }),
        _ => None,
    }
}

fn assignable(want: &Type, got: &Type) -> bool {
    unify(want, got).is_some_and(|u| u == *want)
}

fn binary_type(op: ast::BinOp, l: &Type, r: &Type) -> Option<Type> {
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
