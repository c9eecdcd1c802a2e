//! Any body posted to `/v1/instances/{id}/steps/{step}/actions`: read as the API reads it (the
//! NUL check, the JSON, the action against a step's form), an answer or a refusal, never a panic.
#![no_main]

use std::sync::OnceLock;

use civicflow::http::extract::nul_at;
use civicflow::http::instances::{read_action, ActRequest};
use civicflow_dsl::ir;
use libfuzzer_sys::fuzz_target;

/// The bundled residents' demand policy: its first step has a form with personal fields and
/// requirements, its assessment is a 2-of-3 approval with a form.
fn policy() -> &'static ir::Policy {
    static POLICY: OnceLock<ir::Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        civicflow_dsl::compile(include_str!("../../policies/residents_demand.cf")).expect("the bundled policy").policy
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = nul_at(&value, String::new());
    }
    let Ok(request) = serde_json::from_slice::<ActRequest>(data) else { return };
    for step in ["诉求受理", "稳定风险评估", "无此步骤"] {
        let _ = read_action(step, policy().node(step), &request);
    }
});
