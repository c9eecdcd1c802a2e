//! Residents' personal data leaving the server (DOMAIN R6.2): the answers of the API are
//! redacted for a principal that is neither of an office bound to the instance (R6.1) nor in an
//! `oversight` role of its policy. The rules are the core's (`core::personal`); this module
//! applies them to what the handlers send. Stored events are never changed (the audit hashes
//! shown stay those of what was recorded; verification runs on the server).

use std::sync::Arc;

use civicflow_engine::core::personal::{self, Viewer, REDACTED};
use civicflow_engine::core::{Program, State as CoreState};

use super::auth::Principal;
use super::problem::ApiError;
use super::AppState;

/// Whether `principal` must get this instance's personal values redacted.
pub fn must_redact(program: &Program, core: &CoreState, principal: &Principal) -> bool {
    personal::has_personal(program)
        && !personal::sees_personal(program, core, Viewer { office: &principal.office, roles: &principal.roles })
}

/// The instance's program when `principal` must get its personal values redacted (`None`: sees
/// them) — what the pages, the exports and the event stream redact with (R6.2).
pub async fn redactor(state: &AppState, id: &str, principal: &Principal) -> Result<Option<Arc<Program>>, ApiError> {
    let (record, core) = state.runtime.load(id).await?;
    let program = state.runtime.program(&record.policy_name, Some(&record.policy_hash)).await?;
    Ok(must_redact(&program, &core, principal).then_some(program))
}

/// A stored event's payload as such a principal reads it: the personal fields of a recorded
/// form keep their key, the value becomes the text [`REDACTED`].
pub fn redact_payload(program: &Program, kind: &str, payload: &mut serde_json::Value) {
    if kind != "form_recorded" {
        return;
    }
    let Some(node) = payload.get("node").and_then(|n| n.as_str()).map(str::to_string) else { return };
    let def = match node.rsplit_once('[') {
        Some((base, rest)) if rest.ends_with(']') => base.to_string(),
        _ => node,
    };
    let Some(def) = program.node(&def) else { return };
    let Some(data) = payload.get_mut("data").and_then(|d| d.as_object_mut()) else { return };
    for f in def.form.iter().filter(|f| f.personal) {
        if let Some(v) = data.get_mut(&f.name) {
            // The stored encoding of a text value (`{"text": …}`), so readers parse it alike.
            *v = serde_json::json!({ "text": REDACTED });
        }
    }
}
