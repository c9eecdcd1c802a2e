//! Offices, not just roles (DOMAIN R6.1).
//!
//! A role names a kind of body (职能部门, 社区居委会, 首办部门); an instance binds each role whose
//! policy declares `bound by …` to the particular office that holds it for that matter: a text
//! parameter (the community concerned), the office of the principal who started it (the
//! requesting department), a text field recorded by a step (the first receiver named by
//! 民生办), or, per fan-out copy, the copy's element. Each binding is an [`Event::Bound`], so the
//! history says who was entitled and since when. An actor acting in a bound role must belong to
//! the bound office (a delegate too: delegation stays within the office); another office with
//! the same kind of role is refused (F035), and a role whose office is not known yet refuses
//! everyone (F036). Roles without `bound by` stay open to every office holding them.

use civicflow_dsl::ir::{self, RoleBinding};
use civicflow_dsl::value::Value;

use super::{Actor, Decision, Event, Program, Refusal, State};

/// Folds an [`Event::Bound`] into the state.
pub(super) fn apply_bound(state: &mut State, role: &str, office: &str, node: Option<&str>) {
    match node {
        Some(key) => {
            if let Some(n) = state.nodes.get_mut(key) {
                n.bound.insert(role.to_string(), office.to_string());
            }
        }
        None => {
            state.bindings.insert(role.to_string(), office.to_string());
        }
    }
}

/// What a role is bound to on a runtime node, as far as the state knows.
pub(super) enum Bound<'s> {
    /// The role has no `bound by`: any office holding it.
    Open,
    Office(&'s str),
    /// Bound by something not recorded yet (words for the refusal).
    Pending(String),
}

pub(super) fn bound_on<'s>(program: &Program, state: &'s State, key: &str, role: &str) -> Bound<'s> {
    let Some(binding) = program.policy.roles.iter().find(|r| r.name == role).and_then(|r| r.bound.as_ref()) else {
        return Bound::Open;
    };
    // The node's own: a fan-out copy's item, or the office a transfer handed it to (转办).
    if let Some(office) = state.nodes.get(key).and_then(|n| n.bound.get(role)) {
        return Bound::Office(office);
    }
    if let RoleBinding::Item = binding {
        return Bound::Pending("the fan-out item of each copy".into());
    }
    match state.bindings.get(role) {
        Some(office) => Bound::Office(office),
        None => Bound::Pending(match binding {
            RoleBinding::Param { param } => format!("parameter `{param}`"),
            RoleBinding::Starter => "the office that started the instance".into(),
            RoleBinding::Field { node, field } => format!("field `{field}` of step `{node}`"),
            RoleBinding::Item => "the fan-out item".into(),
        }),
    }
}

/// The office bound to `role` on the runtime node `key`, if the role is bound and its office
/// known (the simulation acts as a principal of that office).
pub fn bound_office(program: &Program, state: &State, key: &str, role: &str) -> Option<String> {
    match bound_on(program, state, key, role) {
        Bound::Office(o) => Some(o.to_string()),
        Bound::Open | Bound::Pending(_) => None,
    }
}

/// Whether a principal of `office` acting in `role` passes the binding check on `key` (the
/// inbox lists only such steps). Says nothing about whether `role` is named in `by`.
pub fn may_act(program: &Program, state: &State, key: &str, role: &str, office: &str) -> bool {
    match bound_on(program, state, key, role) {
        Bound::Open => true,
        Bound::Office(o) => o == office,
        Bound::Pending(_) => false,
    }
}

/// Every office bound to the instance (instance-wide and per copy): these see personal data (R6.2).
pub fn bound_offices(state: &State) -> impl Iterator<Item = &str> {
    state.bindings.values().chain(state.nodes.values().flat_map(|n| n.bound.values())).map(String::as_str)
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Text(s) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

impl Decision<'_> {
    /// R6.1: the acting office must be the one bound to the role it acts in. Only for roles
    /// named in the step's `by` (an objection or an urge from outside the listed roles is not
    /// an act in a bound role).
    pub(super) fn office_bound(&self, key: &str, def: &ir::Node, acting: &Actor) -> Result<(), Refusal> {
        if !def.roles.contains(&acting.role) {
            return Ok(());
        }
        match bound_on(self.ctx.program, &self.state, key, &acting.role) {
            Bound::Open => Ok(()),
            Bound::Office(o) if o == acting.office => Ok(()),
            Bound::Office(o) => Err(Refusal::OfficeNotBound {
                node: key.into(),
                role: acting.role.clone(),
                bound: o.to_string(),
                office: acting.office.clone(),
            }),
            Bound::Pending(source) => {
                Err(Refusal::RoleNotBound { node: key.into(), role: acting.role.clone(), source })
            }
        }
    }

    /// At start: roles bound by a parameter or by the starter's office.
    pub(super) fn bind_at_start(&mut self, starter: &Actor) -> Result<(), Refusal> {
        let program = self.ctx.program;
        for r in &program.policy.roles {
            let office = match &r.bound {
                Some(RoleBinding::Param { param }) => match self.state.params.get(param).and_then(text_of) {
                    Some(o) => o,
                    None => {
                        return Err(Refusal::BadParam {
                            param: param.clone(),
                            problem: format!("names the office bound to role `{}` (R6.1): give its name", r.name),
                        })
                    }
                },
                Some(RoleBinding::Starter) => {
                    if starter.office.trim().is_empty() {
                        continue;
                    }
                    starter.office.clone()
                }
                _ => continue,
            };
            self.emit(Event::Bound { role: r.name.clone(), office, node: None });
        }
        Ok(())
    }

    /// A step's form recorded: roles bound by one of its fields take the office it names.
    pub(super) fn bind_from_form(&mut self, key: &str) -> Result<(), Refusal> {
        let program = self.ctx.program;
        let Some(n) = self.state.nodes.get(key) else { return Ok(()) };
        let def = n.def.clone();
        let Some(form) = n.form.clone() else { return Ok(()) };
        for r in &program.policy.roles {
            let Some(RoleBinding::Field { node, field }) = &r.bound else { continue };
            if *node != def {
                continue;
            }
            let Some(office) = form.get(field).and_then(text_of) else { continue };
            if self.state.bindings.get(&r.name) != Some(&office) {
                self.emit(Event::Bound { role: r.name.clone(), office, node: None });
            }
        }
        Ok(())
    }

    /// A fan-out made its copies: roles `bound by item` that the step names take each copy's
    /// element as their office in that copy.
    pub(super) fn bind_copies(&mut self, key: &str, def: &ir::Node) -> Result<(), Refusal> {
        let program = self.ctx.program;
        let roles: Vec<&str> = program
            .policy
            .roles
            .iter()
            .filter(|r| matches!(r.bound, Some(RoleBinding::Item)) && def.roles.contains(&r.name))
            .map(|r| r.name.as_str())
            .collect();
        if roles.is_empty() {
            return Ok(());
        }
        let prefix = format!("{key}[");
        let mut copies: Vec<(String, Option<String>)> = self
            .state
            .nodes
            .iter()
            .filter(|(k, n)| k.starts_with(&prefix) && n.def == def.id)
            .map(|(k, n)| (k.clone(), n.element.as_ref().and_then(text_of)))
            .collect();
        copies.sort_by_key(|(k, _)| super::copy_index(k));
        for (copy, office) in copies {
            // An element that is not a name leaves the copy unbound: nobody may act (F036).
            let Some(office) = office else { continue };
            for role in &roles {
                self.emit(Event::Bound { role: (*role).to_string(), office: office.clone(), node: Some(copy.clone()) });
            }
        }
        Ok(())
    }
}
