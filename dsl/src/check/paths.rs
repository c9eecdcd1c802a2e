//! Steps inside a called procedure, named from outside (`居委会换届.推选成员代表`): in `after`,
//! `STEP.field` and `start()`/`end()`. Each part after the first names a step or phase of the
//! procedure the part before calls; an unknown part is E0103 with a did-you-mean among the
//! names that procedure has, and a part after a step that calls nothing is E0123.

use super::{Checker, Decl, Unit};
use crate::ast::{self, Ident, Item};
use crate::diag::{suggest, Code, Diagnostic};

/// The names of a procedure's steps and phases, as `collect` would find them (duplicates are
/// reported where the procedure is lowered, not here).
fn names_of(items: &[Item], path: &str, unit: &mut Unit) {
    for item in items {
        let (name, children, call) = match item {
            Item::Phase(p) => (&p.name, Some(&p.items), None),
            Item::Step(s) => {
                (&s.name, None, if let ast::StepKind::Call(p) = &s.kind { Some(p.name.clone()) } else { None })
            }
            _ => continue,
        };
        if unit.contains_key(&name.name) {
            continue;
        }
        let id = format!("{path}{}", name.name);
        let form = if let Item::Step(s) = item { super::form_fields(s) } else { Vec::new() };
        unit.insert(name.name.clone(), Decl { id: id.clone(), span: name.span, form, call });
        if let Some(children) = children {
            names_of(children, &format!("{id}/"), unit);
        }
    }
}

/// `A.B.C` as its parts, if the expression is a chain of names.
pub(super) fn dotted(e: &ast::Expr) -> Option<Vec<&Ident>> {
    match &e.kind {
        ast::ExprKind::Name(n) => Some(vec![n]),
        ast::ExprKind::Field(of, f) => {
            let mut parts = dotted(of)?;
            parts.push(f);
            Some(parts)
        }
        _ => None,
    }
}

impl Checker {
    /// Resolves a step named in `due … after`, a `return` or `may return` (`X` or `X.Y.Z`).
    pub(super) fn step_path(&mut self, p: &ast::StepPath, unit: &Unit) -> Option<Decl> {
        let inner: Vec<&Ident> = p.inner.iter().collect();
        self.path_ref(&p.step, &inner, unit)
    }

    /// Resolves `first.rest…` from `unit`, descending into called procedures.
    pub(super) fn path_ref(&mut self, first: &Ident, rest: &[&Ident], unit: &Unit) -> Option<Decl> {
        let mut decl = self.node_ref(first, unit, "")?;
        let mut before = first.name.clone();
        for part in rest {
            let Some(procedure) = decl.call.as_ref().and_then(|p| self.procedures.get(p)).cloned() else {
                self.err(
                    Diagnostic::error(
                        Code::E0123,
                        part.span,
                        format!("`{before}` calls no procedure, so it has no step `{}`", part.name),
                    )
                    .with_label("not inside a call")
                    .with_help("`.` after a step name reaches into the procedure a `call` step runs"),
                );
                return None;
            };
            let mut inner = Unit::new();
            names_of(&procedure.items, &format!("{}/", decl.id), &mut inner);
            let Some(found) = inner.get(&part.name).cloned() else {
                let mut d = Diagnostic::error(
                    Code::E0103,
                    part.span,
                    format!(
                        "procedure `{}` (called by `{before}`) has no step or phase `{}`",
                        procedure.name.name, part.name
                    ),
                )
                .with_label("unknown step");
                d = match suggest(&part.name, inner.keys().map(String::as_str)) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help("name a step declared in that procedure"),
                };
                self.err(d);
                return None;
            };
            before = format!("{before}.{}", part.name);
            decl = found;
        }
        Some(decl)
    }
}
