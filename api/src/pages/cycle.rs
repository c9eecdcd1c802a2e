//! R0.3 on the pages: the next cycle that needs fresh parameters (the members, households and
//! voters counted afresh for 换届) is started from the instance's page by the role the policy
//! names, with a form of exactly those parameters. The form becomes the API's request and goes
//! through the API's own handler (`POST /v1/instances/{id}/next-cycle`), as acting does.

use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};

use civicflow_dsl::ir::Type;
use civicflow_engine::core::{cycles, Context, State as CoreState};

use crate::http::auth::Caller;
use crate::http::extract::{AppPath, IdempotencyKey};
use crate::http::instances;

use super::{enc, field, random_hex, Pages, Session};

/// The start form for `session`, if the instance's next cycle waits for a role it holds: one
/// input per fresh parameter, typed as the policy declares it.
pub(super) async fn start_form(
    pages: &Pages,
    session: &Session,
    id: &str,
    entered: Option<&[(String, String)]>,
) -> Option<Value> {
    let (record, core): (_, CoreState) = pages.app.runtime.load(id).await.ok()?;
    let next = core.cycle.next.as_ref().filter(|n| !n.opened)?;
    let role = next.awaiting.as_ref().filter(|r| session.principal.roles.contains(r))?;
    let program = pages.app.runtime.program(&record.policy_name, Some(&record.policy_hash)).await.ok()?;
    let calendar = pages.app.runtime.calendar();
    let cycle = cycles::due_cycle(Context { program: &program, calendar: &calendar }, &core)?;
    let fields: Vec<Value> = cycle
        .fresh
        .iter()
        .filter_map(|name| program.policy.params.iter().find(|p| &p.id == name))
        .map(|p| {
            let input = match p.ty {
                Type::Int | Type::Decimal => "number",
                Type::Date => "date",
                _ => "text",
            };
            let value = entered.and_then(|f| field(f, &format!("f.{}", p.id))).unwrap_or_default();
            json!({ "name": p.id, "ty": p.ty.to_string(), "input": input, "value": value })
        })
        .collect();
    let key = random_hex(16).ok()?;
    Some(json!({
        "action": format!("/instances/{}/next-cycle", enc(id)),
        "role": role,
        "instance": next.instance,
        "key": key,
        "fields": fields,
    }))
}

/// Starts the next cycle from the form; a refusal shows the instance page again with what was
/// entered and the refusal's words.
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
    let mut params = serde_json::Map::new();
    for (name, value) in &f {
        let Some(param) = name.strip_prefix("f.") else { continue };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        // Numbers as numbers; the API reads every other type from its text.
        let json = value.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(value.into()));
        params.insert(param.to_string(), json);
    }
    let role = field(&f, "role").map(str::to_string);
    let request = json!({ "params": params, "role": role });
    let body = super::through_api::body(&format!("/v1/instances/{}/next-cycle", enc(&id)), &request);
    let key = field(&f, "key").map(|k| format!("page-{k}"));
    let result = instances::next_cycle(
        State(pages.app.clone()),
        Caller(session.principal.clone()),
        AppPath(id.clone()),
        IdempotencyKey(key),
        body,
    )
    .await;
    super::through_api::answer(&pages, &headers, &session, &id, &f, result).await
}
