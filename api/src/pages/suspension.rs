//! 挂起 / 激活 on the pages (issue 11.3): the instance page says plainly that an instance is
//! suspended, since when and why, and offers the role the policy declares `may suspend` the form
//! that suspends or resumes it, with a reason. The form becomes the API's request and goes
//! through the API's own handler (`POST /v1/instances/{id}/suspend` or `/resume`), as acting does.

use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::FixedOffset;
use serde_json::{json, Value};

use civicflow_dsl::ir::Policy;

use crate::http::auth::Caller;
use crate::http::extract::{AppPath, IdempotencyKey};
use crate::http::suspension;
use crate::http::views::InstanceView;

use super::{enc, field, local, random_hex, Pages, Session};

/// The banner and the form for `session` on a running instance: `None` when neither applies.
pub(super) fn section(policy: &Policy, tz: FixedOffset, view: &InstanceView, session: &Session) -> Option<Value> {
    let banner = view.suspended.as_ref().map(|s| json!({ "since": local(Some(s.since), tz), "reason": s.reason }));
    let role = policy
        .roles
        .iter()
        .find(|r| r.may_suspend && session.principal.roles.contains(&r.name))
        .filter(|_| view.status == "running")
        .map(|r| r.name.clone());
    if banner.is_none() && role.is_none() {
        return None;
    }
    let resume = view.suspended.is_some();
    let form = role.map(|role| {
        let verb = if resume { "resume" } else { "suspend" };
        json!({
            "action": format!("/instances/{}/{verb}", enc(&view.id)),
            "role": role,
            "resume": resume,
            "key": random_hex(16).unwrap_or_default(),
        })
    });
    Some(json!({ "banner": banner, "form": form }))
}

/// Suspends from the form.
pub async fn suspend(
    State(pages): State<Pages>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    submit(pages, headers, id, f, false).await
}

/// Resumes from the form.
pub async fn resume(
    State(pages): State<Pages>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    submit(pages, headers, id, f, true).await
}

/// Sends the form through the API's handler (`through_api`).
async fn submit(pages: Pages, headers: HeaderMap, id: String, f: Vec<(String, String)>, resume: bool) -> Response {
    let session = match pages.require_post(&headers, &f).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let request = json!({ "reason": field(&f, "reason").unwrap_or_default(), "role": field(&f, "role") });
    let verb = if resume { "resume" } else { "suspend" };
    let body = super::through_api::body(&format!("/v1/instances/{}/{verb}", enc(&id)), &request);
    let key = IdempotencyKey(field(&f, "key").map(|k| format!("page-{k}")));
    let (app, caller, path) = (State(pages.app.clone()), Caller(session.principal.clone()), AppPath(id.clone()));
    let result = if resume {
        suspension::resume(app, caller, path, key, body).await
    } else {
        suspension::suspend(app, caller, path, key, body).await
    };
    super::through_api::answer(&pages, &headers, &session, &id, &f, result).await
}
