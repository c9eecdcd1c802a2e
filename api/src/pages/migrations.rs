//! Migrations on the pages (issue 11.5, 11.7), for the admin: a form that plans moving a
//! policy's running instances to another version (the renames one per line, `OLD=NEW`); the plan
//! shown as a reviewer reads it — what the versions rename, remove and add, every instance with
//! how it maps or why it is refused — before anything moves; and the button that applies it, with
//! what the application did. Planning and applying go through the API's own handlers
//! (`POST /v1/migrations`, `POST /v1/migrations/{id}/apply`).

use std::collections::BTreeMap;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{json, Value};

use crate::http::auth::Caller;
use crate::http::extract::AppPath;
use crate::http::migrations::{self, PlanView, ReportView};
use crate::http::problem::{ApiError, Problem};

use super::{enc, field, local, Pages, Session};

/// The session, if it is the admin's; else the page that says so.
async fn admin(pages: &Pages, headers: &HeaderMap, form: Option<&[(String, String)]>) -> Result<Session, Response> {
    let session = match form {
        Some(f) => pages.require_post(headers, f).await?,
        None => pages.require(headers).await?,
    };
    if !session.principal.is_admin() {
        let e = ApiError::admin_required("migrating instances");
        return Err(pages.error(headers, e.status, &e.problem.code, "error", Some(&e.problem.detail)));
    }
    Ok(session)
}

/// The form, with what was entered and the refusal of a plan that could not be made.
async fn form_page(
    pages: &Pages,
    headers: &HeaderMap,
    session: &Session,
    status: StatusCode,
    sent: Option<(&Problem, &[(String, String)])>,
) -> Response {
    let policies = match pages.app.store.list_policies().await {
        Ok(p) => p,
        Err(e) => return pages.api_error(headers, e.into()),
    };
    let mut versions = Vec::new();
    for p in &policies {
        let all = match pages.app.store.policy_versions(&p.name).await {
            Ok(v) => v,
            Err(e) => return pages.api_error(headers, e.into()),
        };
        let labels: Vec<String> =
            all.iter().map(|v| format!("{} ({})", v.version_label, v.hash.get(..12).unwrap_or(&v.hash))).collect();
        versions.push(json!({ "name": p.name, "versions": labels.join("、") }));
    }
    let entered = |name: &str| sent.and_then(|(_, f)| field(f, name)).unwrap_or_default().to_string();
    let page = json!({
        "policies": versions,
        "entered": { "policy": entered("policy"), "from": entered("from"), "to": entered("to"), "renames": entered("renames") },
        "refusal": sent.map(|(p, _)| json!({ "code": p.code, "detail": p.detail })),
    });
    let mut r = pages.render_status(headers, status, "migrations", Some(session), page);
    if let Some((p, _)) = sent {
        super::mark_problem(&mut r, &p.code, &p.detail);
    }
    r
}

pub async fn page(State(pages): State<Pages>, headers: HeaderMap) -> Response {
    match admin(&pages, &headers, None).await {
        Ok(session) => form_page(&pages, &headers, &session, StatusCode::OK, None).await,
        Err(r) => r,
    }
}

/// Plans from the form, then shows the plan.
pub async fn plan(State(pages): State<Pages>, headers: HeaderMap, Form(f): Form<Vec<(String, String)>>) -> Response {
    let session = match admin(&pages, &headers, Some(&f)).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let text = |name: &str| field(&f, name).map(str::trim).unwrap_or_default().to_string();
    let mut renames = BTreeMap::new();
    for line in text("renames").lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once('=') {
            Some((old, new)) => {
                renames.insert(old.trim().to_string(), new.trim().to_string());
            }
            None => {
                let p = ApiError::invalid(format!("a rename is written OLD=NEW, one per line, not `{line}`")).problem;
                return form_page(&pages, &headers, &session, StatusCode::UNPROCESSABLE_ENTITY, Some((&p, &f))).await;
            }
        }
    }
    let request = json!({ "policy": text("policy"), "from": text("from"), "to": text("to"), "renames": renames });
    let body = super::through_api::body("/v1/migrations", &request);
    let result = migrations::plan(State(pages.app.clone()), Caller(session.principal.clone()), body).await;
    let problem = match result {
        Ok(response) if response.status().is_success() => {
            let bytes = axum::body::to_bytes(response.into_body(), 16 << 20).await.unwrap_or_default();
            return match serde_json::from_slice::<PlanView>(&bytes) {
                Ok(plan) => Redirect::to(&format!("/migrations/{}", enc(&plan.id))).into_response(),
                Err(e) => pages.api_error(&headers, ApiError::internal(format!("the plan did not read back: {e}"))),
            };
        }
        Ok(response) => {
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
            match serde_json::from_slice::<Problem>(&bytes) {
                Ok(p) => (status, p),
                Err(_) => {
                    return pages.error(
                        &headers,
                        status,
                        crate::http::codes::ProblemCode::Error.as_str(),
                        "error",
                        None,
                    )
                }
            }
        }
        Err(e) if e.status.is_server_error() => return pages.api_error(&headers, e),
        Err(e) => (e.status, e.problem),
    };
    form_page(&pages, &headers, &session, problem.0, Some((&problem.1, &f))).await
}

/// One plan, for review, with what applying it did when it was just applied.
async fn plan_page(
    pages: &Pages,
    headers: &HeaderMap,
    session: &Session,
    id: &str,
    report: Option<ReportView>,
) -> Response {
    let plan: PlanView = match pages.app.runtime.migration_plan(id).await {
        Ok(p) => p.into(),
        Err(e) => return pages.api_error(headers, e.into()),
    };
    let tz = super::shanghai();
    let instances: Vec<Value> = plan
        .instances
        .iter()
        .map(|i| {
            json!({
                "id": i.id, "href": format!("/instances/{}", enc(&i.id)), "version": i.version,
                "refused": i.outcome == "refused", "reason": i.reason, "code": i.code,
                "opens": i.opens.join("、"),
            })
        })
        .collect();
    let page = json!({
        "id": plan.id,
        "policy": plan.policy,
        "from": format!("{} ({})", plan.from_label, plan.from.get(..12).unwrap_or(&plan.from)),
        "to": format!("{} ({})", plan.to_label, plan.to.get(..12).unwrap_or(&plan.to)),
        "renamed": plan.renamed.iter().map(|(a, b)| format!("{a} → {b}")).collect::<Vec<_>>(),
        "removed": plan.removed,
        "added": plan.added,
        "changed_kind": plan.changed_kind.iter().map(|(a, b)| format!("{a}: {b}")).collect::<Vec<_>>(),
        "moves": plan.moves,
        "refused": plan.refused,
        "instances": instances,
        "created": local(Some(plan.created_at), tz),
        "created_by": plan.created_by,
        "apply_action": format!("/migrations/{}/apply", enc(&plan.id)),
        "report": report.map(|r| json!({
            "migrated": r.migrated.len(), "already": r.already.len(), "gone": r.gone.join("、"),
            "refused": r.refused.iter().map(|x| json!({ "id": x.id, "code": x.code, "reason": x.reason })).collect::<Vec<_>>(),
        })),
    });
    pages.render(headers, "migration", Some(session), page)
}

pub async fn show(State(pages): State<Pages>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match admin(&pages, &headers, None).await {
        Ok(session) => plan_page(&pages, &headers, &session, &id, None).await,
        Err(r) => r,
    }
}

/// Applies the plan, then shows it with what was done.
pub async fn apply(
    State(pages): State<Pages>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let session = match admin(&pages, &headers, Some(&f)).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match migrations::apply(State(pages.app.clone()), Caller(session.principal.clone()), AppPath(id.clone())).await {
        Ok(axum::Json(report)) => plan_page(&pages, &headers, &session, &id, Some(report)).await,
        Err(e) => pages.api_error(&headers, e),
    }
}
