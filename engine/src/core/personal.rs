//! Residents' personal data (DOMAIN R6.2, 个人信息保护法 art. 6): a form field marked `personal`
//! is shown only to the offices bound to the instance (R6.1) and to principals in a role the
//! policy declares `oversight` (纪委, 监督). Everyone else gets the field with its value replaced
//! by [`REDACTED`]; the key stays, so a reader knows something was recorded.
//!
//! The stored events are never changed: the audit chain hashes what is stored, and verification
//! runs on the server. Redaction applies where a value leaves the server (state, history, the
//! event stream, pages, exports), through these pure functions.

use std::collections::BTreeMap;

use civicflow_dsl::value::Value;

use super::binding::bound_offices;
use super::{Event, Program, State};

/// What a personal value reads as for a viewer who may not see it.
pub const REDACTED: &str = "[个人信息]";

/// Who is looking: the principal's office and roles.
#[derive(Clone, Copy, Debug)]
pub struct Viewer<'a> {
    pub office: &'a str,
    pub roles: &'a [String],
}

/// Whether the policy has any personal field at all (nothing to redact otherwise).
pub fn has_personal(program: &Program) -> bool {
    program.policy.nodes.iter().any(|n| n.form.iter().any(|f| f.personal))
}

/// R6.2: a bound office of this instance, or an oversight role of its policy.
pub fn sees_personal(program: &Program, state: &State, viewer: Viewer) -> bool {
    let oversight = program.policy.roles.iter().any(|r| r.oversight && viewer.roles.contains(&r.name));
    oversight || bound_offices(state).any(|o| o == viewer.office)
}

/// The form of a runtime node (its IR node `def`) with personal values replaced.
pub fn redact_form(program: &Program, def: &str, form: &mut BTreeMap<String, Value>) {
    let Some(node) = program.node(def) else { return };
    for f in node.form.iter().filter(|f| f.personal) {
        if let Some(v) = form.get_mut(&f.name) {
            *v = Value::Text(REDACTED.to_string());
        }
    }
}

/// The state as a viewer who may not see personal data reads it.
pub fn redact_state(program: &Program, state: &mut State) {
    state.nodes.for_each_mut(|n| {
        if let Some(form) = n.form.as_mut() {
            redact_form(program, &n.def, form);
        }
    });
}

/// An event as such a viewer reads it. `def_of` maps a runtime node key (`调查[2]`) to its IR id.
pub fn redact_event(program: &Program, event: &mut Event) {
    if let Event::FormRecorded { node, data } = event {
        let def = def_of(node);
        redact_form(program, &def, data);
    }
}

/// The IR id of a runtime key: a fan-out copy `id[i]` runs `id`.
fn def_of(key: &str) -> String {
    match key.rsplit_once('[') {
        Some((base, rest)) if rest.ends_with(']') => base.to_string(),
        _ => key.to_string(),
    }
}
