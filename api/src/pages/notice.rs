//! Notices: a publicity notice (公示) or a certificate, rendered from the policy's template with
//! the instance's data — its parameters and derived values, every recorded form field, and for a
//! vote the elected (`当选人名单`). One rendering per step that names a template.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use handlebars::Handlebars;
use serde_json::{json, Value};

use civicflow_dsl::value::to_json;

use super::Pages;

pub async fn page(State(pages): State<Pages>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let session = match pages.require(&headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (record, mut core) = match pages.app.runtime.load(&id).await {
        Ok(x) => x,
        Err(e) => return pages.api_error(&headers, e.into()),
    };
    let program = match pages.app.runtime.program(&record.policy_name, Some(&record.policy_hash)).await {
        Ok(p) => p,
        Err(e) => return pages.api_error(&headers, e.into()),
    };
    // R6.2: a template's personal fields render as [个人信息] unless bound office or oversight.
    if crate::http::personal::must_redact(&program, &core, &session.principal) {
        civicflow_engine::core::personal::redact_state(&program, &mut core);
    }
    let mut base = serde_json::Map::new();
    for (k, v) in core.params.iter().chain(core.values.iter()) {
        base.insert(k.clone(), to_json(v));
    }
    for n in core.nodes.values() {
        for (k, v) in n.form.iter().flatten() {
            base.insert(k.clone(), to_json(v));
        }
    }
    let mut hbs = Handlebars::new();
    hbs.register_escape_fn(handlebars::no_escape);
    let mut notices: Vec<Value> = Vec::new();
    for (key, n) in &core.nodes {
        let Some(def) = program.node(&n.def) else { continue };
        let Some(name) = def.template.as_deref() else { continue };
        let Some(t) = program.policy.templates.iter().find(|t| t.name == name) else { continue };
        let mut data = base.clone();
        for (k, v) in n.form.iter().flatten() {
            data.insert(k.clone(), to_json(v));
        }
        if let Some(v) = &n.vote {
            data.insert("当选人名单".into(), json!(v.elected));
        }
        data.insert("instance".into(), json!(id));
        let text = hbs.render_template(&t.source, &Value::Object(data)).unwrap_or_else(|e| format!("({e})"));
        notices.push(json!({
            "step": key, "template": name, "status": crate::http::instances::word(&n.status), "text": text.trim(),
        }));
    }
    let page = json!({
        "id": id,
        "instance_href": format!("/instances/{}", super::enc(&id)),
        "notices": notices,
    });
    pages.render(&headers, "notice", Some(&session), page)
}
