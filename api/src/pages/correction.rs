//! 更正 on the pages (issue 11.4): the instance page offers the role the policy declares
//! `may correct` a form that corrects one start parameter, with a reason, showing each
//! parameter's value now. The form becomes the API's request and goes through the API's own
//! handler (`POST /v1/instances/{id}/corrections`), so a refusal shows the rule's words (F060 names
//! the completed step and its rule).

use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};

use civicflow_dsl::ir::{Policy, Type};

use crate::http::auth::Caller;
use crate::http::corrections;
use crate::http::extract::{AppPath, IdempotencyKey};
use crate::http::views::InstanceView;

use super::{enc, field, random_hex, Pages, Session};

/// The form for `session` on a running instance: `None` unless it holds a role that may correct.
pub(super) fn section(policy: &Policy, view: &InstanceView, session: &Session) -> Option<Value> {
    let role = policy
        .roles
        .iter()
        .find(|r| r.may_correct && session.principal.roles.contains(&r.name))
        .filter(|_| view.status == "running")?;
    let params: Vec<Value> = policy
        .params
        .iter()
        .filter(|p| !p.id.contains('/'))
        .map(|p| {
            let now = view.params.get(&p.id).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            json!({ "name": p.id, "ty": p.ty.to_string(), "now": now })
        })
        .collect();
    Some(json!({
        "action": format!("/instances/{}/corrections", enc(&view.id)),
        "role": role.name,
        "params": params,
        "key": random_hex(16).unwrap_or_default(),
    }))
}

/// Corrects from the form: one parameter, its new value read with the parameter's type.
pub async fn submit(
    State(pages): State<Pages>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let session = match pages.require_post(&headers, &f).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let name = field(&f, "param").unwrap_or_default().to_string();
    let raw = field(&f, "value").map(str::trim).unwrap_or_default();
    let ty = match pages.app.runtime.load(&id).await {
        Ok((record, _)) => match pages.app.runtime.program(&record.policy_name, Some(&record.policy_hash)).await {
            Ok(program) => program.policy.params.iter().find(|p| p.id == name).map(|p| p.ty.clone()),
            Err(e) => return pages.api_error(&headers, e.into()),
        },
        Err(e) => return pages.api_error(&headers, e.into()),
    };
    // As a form's fields are sent (`submit_form`): scalars as text, read by the API with the
    // parameter's type; a list or record as the JSON typed in.
    let value = match ty {
        Some(Type::Bool) => Value::Bool(raw == "true"),
        Some(Type::List { .. } | Type::Record { .. }) => {
            serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.into()))
        }
        _ => Value::String(raw.into()),
    };
    let request = json!({
        "params": { name: value },
        "reason": field(&f, "reason").unwrap_or_default(),
        "role": field(&f, "role"),
    });
    let body = super::through_api::body(&format!("/v1/instances/{}/corrections", enc(&id)), &request);
    let key = IdempotencyKey(field(&f, "key").map(|k| format!("page-{k}")));
    let result = corrections::correct(
        State(pages.app.clone()),
        Caller(session.principal.clone()),
        AppPath(id.clone()),
        key,
        body,
    )
    .await;
    super::through_api::answer(&pages, &headers, &session, &id, &f, result).await
}
