//! Offices, not just roles (DOMAIN R6.1, R6.2): `role R bound by …` and `personal` markers.
//!
//! A role names a kind of body (职能部门, 社区居委会, 首办部门); `bound by` says where an
//! instance takes the particular office that holds it for that matter: a text parameter (the
//! community concerned), the starter's office (the requesting department), a text field another
//! step records (the first receiver named by 民生办), or the element of each fan-out copy. The
//! engine checks the binding on every act; here the sources are resolved and typed:
//! E0112 (no such parameter or field), E0113 (not text), E0114 (`item` on a step without
//! `for`), E0115 (`personal` outside a form), E0116 (a step in a field-bound role that may open
//! before the field is recorded).

use crate::ast::{self, BindSource, Item};
use crate::diag::{suggest, Code, Diagnostic};
use crate::ir::{self, Type};

use std::collections::HashMap;

use super::structure::predecessors;
use super::Checker;

impl Checker {
    /// Resolves every `bound by` of the policy's roles (after the nodes are built, so steps and
    /// their forms are known) and refuses `personal` where it means nothing.
    pub(super) fn role_bindings(&mut self, p: &ast::Policy) {
        for item in &p.items {
            match item {
                Item::Role(r) => {
                    let Some(bound) = &r.bound else { continue };
                    let binding = self.binding_source(&r.name, bound);
                    if let Some(role) = self.out.roles.iter_mut().find(|x| x.name == r.name.name) {
                        role.bound = binding;
                    }
                }
                Item::Param(param) => self.personal_param(param),
                Item::Procedure(proc_) => {
                    for i in &proc_.items {
                        if let Item::Param(param) = i {
                            self.personal_param(param);
                        }
                    }
                }
                _ => {}
            }
        }
        self.transfers_need_a_bound_role();
    }

    /// Issue 11.2: a step that may be transferred (转办) acts in a role bound to an office:
    /// otherwise any office holding the role may already act on it and there is nothing to hand on.
    fn transfers_need_a_bound_role(&mut self) {
        let mut unbound: Vec<(String, crate::ast::Span)> = Vec::new();
        for n in &self.out.nodes {
            let Some(span) = n.transfer.as_ref().and_then(|_| self.transfer_spans.get(&n.id)) else { continue };
            let bound = n.roles.iter().any(|r| self.out.roles.iter().any(|x| &x.name == r && x.bound.is_some()));
            if !bound {
                unbound.push((n.name.clone(), *span));
            }
        }
        for (name, span) in unbound {
            self.err(
                Diagnostic::error(
                    Code::E0110,
                    span,
                    format!("`{name}` may be transferred but acts in no role bound to an office"),
                )
                .with_label("a transfer hands the step from one office of a bound role to another")
                .with_help("bind the step's role with `bound by …` (R6.1), or leave out `transfer`"),
            );
        }
    }

    fn personal_param(&mut self, param: &ast::Param) {
        if let Some(span) = param.personal {
            self.err(
                Diagnostic::error(
                    Code::E0115,
                    span,
                    format!("parameter `{}` cannot be marked `personal`", param.name.name),
                )
                .with_label("only form fields take `personal`")
                .with_help("record the resident's personal data in a step's `form` and mark the field there (R6.2)"),
            );
        }
    }

    fn binding_source(&mut self, role: &ast::Ident, bound: &ast::RoleBound) -> Option<ir::RoleBinding> {
        match &bound.source {
            BindSource::Starter => Some(ir::RoleBinding::Starter),
            BindSource::Param(name) => {
                // Only the policy's own parameters: a procedure's are inlined per call.
                let found = self.out.params.iter().find(|x| x.id == name.name).map(|x| x.ty.clone());
                match found {
                    Some(ty) => {
                        self.text_source(role, &ty, name.span, &format!("parameter `{}`", name.name))?;
                        Some(ir::RoleBinding::Param { param: name.name.clone() })
                    }
                    None => {
                        let names: Vec<String> =
                            self.out.params.iter().filter(|x| !x.id.contains('/')).map(|x| x.id.clone()).collect();
                        let mut d = Diagnostic::error(
                            Code::E0112,
                            name.span,
                            format!(
                                "role `{}` is bound by parameter `{}`, which is not declared",
                                role.name, name.name
                            ),
                        )
                        .with_label("unknown parameter");
                        d = match suggest(&name.name, names.iter().map(String::as_str)) {
                            Some(s) => d.with_help(format!("did you mean `{s}`?")),
                            None => d.with_help(format!("declare it with `param {}: text`", name.name)),
                        };
                        self.err(d);
                        None
                    }
                }
            }
            BindSource::Field(step, field) => {
                let unit = self.units.last().cloned().unwrap_or_default();
                let decl = self.node_ref(step, &unit, "")?;
                match decl.form.iter().find(|(n, _)| *n == field.name) {
                    Some((_, ty)) => {
                        let ty = ty.clone();
                        self.text_source(role, &ty, field.span, &format!("field `{}.{}`", step.name, field.name))?;
                        self.recorded_first(role, bound.span, &decl.id, &format!("{}.{}", step.name, field.name));
                        Some(ir::RoleBinding::Field { node: decl.id.clone(), field: field.name.clone() })
                    }
                    None => {
                        let mut d = Diagnostic::error(
                            Code::E0112,
                            field.span,
                            format!(
                                "role `{}` is bound by `{}.{}`, but step `{}` has no such form field",
                                role.name, step.name, field.name, step.name
                            ),
                        )
                        .with_label("unknown field");
                        d = match suggest(&field.name, decl.form.iter().map(|(n, _)| n.as_str())) {
                            Some(s) => d.with_help(format!("did you mean `{s}`?")),
                            None => d.with_help(format!("declare it in the `form` of `{}` as `text`", step.name)),
                        };
                        self.err(d);
                        None
                    }
                }
            }
            BindSource::Item => {
                // Every step that names the role acts per fan-out copy, bound to its element.
                let without_for: Vec<String> = self
                    .out
                    .nodes
                    .iter()
                    .filter(|n| n.roles.contains(&role.name) && n.for_each.is_none())
                    .map(|n| n.id.clone())
                    .collect();
                if let Some(first) = without_for.first() {
                    self.err(
                        Diagnostic::error(
                            Code::E0114,
                            bound.span,
                            format!(
                                "role `{}` is bound by the fan-out item, but step `{first}` has no `for`",
                                role.name
                            ),
                        )
                        .with_label("bound per copy of a fan-out")
                        .with_help(format!(
                            "bind it another way (`bound by param …`), or name another role in `by` of {}",
                            without_for.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
                        )),
                    );
                    return None;
                }
                // An office is named by text: each copy's element must be one (E0113).
                let typed: Vec<(String, Type)> = self
                    .out
                    .nodes
                    .iter()
                    .filter(|n| n.roles.contains(&role.name))
                    .filter_map(|n| self.item_types.get(&n.id).map(|t| (n.name.clone(), t.clone())))
                    .collect();
                for (step, ty) in typed {
                    self.text_source(role, &ty, bound.span, &format!("the items of `{step}`'s `for`"))?;
                }
                Some(ir::RoleBinding::Item)
            }
        }
    }

    /// E0116: every step acting in `role` (bound by a field `recorder` records) waits for the
    /// recorder, so the office is known when it opens.
    fn recorded_first(&mut self, role: &ast::Ident, span: ast::Span, recorder: &str, field: &str) {
        let nodes = &self.out.nodes;
        let by_id: HashMap<&str, &ir::Node> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
        let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
        for n in nodes {
            if let Some(p) = &n.parent {
                children.entry(p.as_str()).or_default().push(n.id.as_str());
            }
        }
        let early: Vec<&ir::Node> = nodes
            .iter()
            .filter(|n| n.roles.contains(&role.name) && n.id != recorder)
            .filter(|n| !predecessors(n, &by_id, &children).contains(recorder))
            .collect();
        let Some(first) = early.first() else { return };
        let d = Diagnostic::error(
            Code::E0116,
            span,
            format!("step `{}` acts as `{}` but may open before `{field}` names its office", first.name, role.name),
        )
        .with_label(format!("bound by `{field}`"))
        .with_help(format!(
            "make {} wait for `{}` (`after …`), or bind the role another way",
            early.iter().map(|n| format!("`{}`", n.name)).collect::<Vec<_>>().join(", "),
            by_id.get(recorder).map_or(recorder, |n| n.name.as_str())
        ));
        self.err(d);
    }

    /// An office is named by text: a binding from anything else is refused.
    fn text_source(&mut self, role: &ast::Ident, ty: &Type, span: ast::Span, what: &str) -> Option<()> {
        if *ty == Type::Text {
            return Some(());
        }
        self.err(
            Diagnostic::error(
                Code::E0113,
                span,
                format!("role `{}` is bound by {what}, which is `{ty}`, not `text`", role.name),
            )
            .with_label(format!("`{ty}`"))
            .with_help("an office is named by text: bind the role to a `text` parameter or form field, or fan out over a `list<text>`"),
        );
        None
    }
}
