//! The inbox (收件箱): the open steps the signed-in office may act on, soonest due first, overdue
//! marked; and the page that acts on one, with the forms the step's kind and the IR's form
//! definition call for. Acting goes through the API's handler (`http::instances::act`), so the
//! refusal shown is the API's (the rule's words and code).

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use serde_json::{json, Value};

use civicflow_dsl::ir::{NodeKind, StepKind, Type};
use civicflow_engine::core::{urgers, NodeStatus};

use crate::http::auth::Caller;
use crate::http::extract::{AppPath, Body, IdempotencyKey};
use crate::http::instances;
use crate::http::problem::Problem;

use super::{enc, field, local, random_hex, Pager, Pages, Session, PAGE_SIZE};

#[derive(Deserialize)]
pub struct PageQuery {
    pub page: Option<usize>,
}

pub async fn page(State(pages): State<Pages>, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let session = match pages.require(&headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Issue 10.6: one page read from the store's open-step table; past the last page, the last.
    let size = PAGE_SIZE as u32;
    let mut page = q.page.unwrap_or(1).clamp(1, i32::MAX as usize) as u32;
    let read = |page: u32| crate::http::inbox::inbox_page(&pages.app, &session.principal, page, size, None);
    let mut found = match read(page).await {
        Ok(found) => found,
        Err(e) => return pages.api_error(&headers, e),
    };
    let last = found.total.div_ceil(u64::from(size)).max(1);
    if u64::from(page) > last {
        page = last as u32;
        found = match read(page).await {
            Ok(found) => found,
            Err(e) => return pages.api_error(&headers, e),
        };
    }
    let (items, total) = (found.items, found.total);
    let shanghai = super::shanghai();
    let lang = super::lang(&headers);
    let (calendar, now) = (pages.app.runtime.calendar(), pages.app.runtime.clock().now());
    let pager = Pager::new(Some(page as usize), total as usize, PAGE_SIZE);
    let rows: Vec<Value> = items
        .iter()
        .map(|i| {
            json!({
                "instance": i.instance,
                "policy": i.policy,
                "step": i.step,
                "name": i.title.clone().unwrap_or_else(|| i.name.clone()),
                "kind": super::words::kind(&i.kind, lang),
                "role": i.role,
                "due": super::due_text(i.due_at, i.due_awaiting_calendar, shanghai, lang, &calendar, now),
                "closes": local(i.window_closes, shanghai),
                "overdue": i.overdue,
                "escalated": i.escalated,
                "copied": i.copied,
                // A next cycle to start (R0.3): its form is on the instance's page.
                "href": if i.kind == "next_cycle" {
                    format!("/instances/{}#next-cycle-form", enc(&i.instance))
                } else {
                    format!("/act?instance={}&step={}", enc(&i.instance), enc(&i.step))
                },
                "instance_href": format!("/instances/{}", enc(&i.instance)),
            })
        })
        .collect();
    pages.render(&headers, "inbox", Some(&session), json!({ "items": rows, "pager": pager }))
}

pub async fn act_page(State(pages): State<Pages>, headers: HeaderMap, Query(q): Query<DoneQuery>) -> Response {
    let session = match pages.require(&headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let done = q.done.is_some().then_some("1");
    render_act(&pages, &headers, &session, &q.instance, &q.step, StatusCode::OK, None, done).await
}

/// The act page: the step, its state, and one form per action its kind takes.
#[allow(clippy::too_many_arguments, reason = "one page, its inputs")]
async fn render_act(
    pages: &Pages,
    headers: &HeaderMap,
    session: &Session,
    instance: &str,
    step: &str,
    status: StatusCode,
    refusal: Option<(&Problem, &[(String, String)])>,
    done: Option<&str>,
) -> Response {
    // After a refusal the form shows what was entered.
    let entered = |name: &str| -> String { refusal.and_then(|(_, f)| field(f, name)).unwrap_or_default().to_string() };
    let (record, core) = match pages.app.runtime.load(instance).await {
        Ok(x) => x,
        Err(e) => return pages.api_error(headers, e.into()),
    };
    let program = match pages.app.runtime.program(&record.policy_name, Some(&record.policy_hash)).await {
        Ok(p) => p,
        Err(e) => return pages.api_error(headers, e.into()),
    };
    let Some(n) = core.nodes.get(step) else {
        return pages.error(
            headers,
            StatusCode::NOT_FOUND,
            crate::http::codes::ProblemCode::NotFound.as_str(),
            "not_found",
            Some(step),
        );
    };
    let Some(def) = program.node(&n.def) else {
        return pages.error(
            headers,
            StatusCode::NOT_FOUND,
            crate::http::codes::ProblemCode::NotFound.as_str(),
            "not_found",
            Some(step),
        );
    };
    let kind = match def.kind {
        NodeKind::Step(k) => k,
        _ => {
            return pages.error(
                headers,
                StatusCode::NOT_FOUND,
                crate::http::codes::ProblemCode::NotFound.as_str(),
                "not_found",
                Some(step),
            )
        }
    };
    let key = match random_hex(16) {
        Ok(k) => k,
        Err(e) => return pages.api_error(headers, e),
    };
    let fields: Vec<Value> = def
        .form
        .iter()
        .map(|f| {
            let input = match f.ty {
                Type::Int | Type::Decimal => "number",
                Type::Date => "date",
                Type::Bool => "checkbox",
                Type::Text => "text",
                _ => "json",
            };
            json!({
                "name": f.name,
                "ty": f.ty.to_string(),
                "input": input,
                "checkbox": input == "checkbox",
                "json": input == "json",
                "step": if f.ty == Type::Decimal { "any" } else { "1" },
                "required": !f.optional && input != "checkbox",
                "value": entered(&format!("f.{}", f.name)),
            })
        })
        .collect();
    let has = |k: StepKind| kind == k;
    let return_targets: Vec<Value> = def
        .returns
        .iter()
        .filter(|r| r.roles.iter().any(|x| session.principal.roles.contains(x)))
        .flat_map(|r| r.targets.iter())
        .map(|t| {
            let name = program.node(t).map_or_else(|| t.clone(), |n| n.title.clone().unwrap_or_else(|| n.name.clone()));
            json!({ "id": t, "name": name })
        })
        .collect();
    let actions = json!({
        "complete": has(StepKind::Task),
        "approve": has(StepKind::Approval),
        "reject": has(StepKind::Approval),
        "file": has(StepKind::Filing),
        "opinion": has(StepKind::Consultation),
        "objection": has(StepKind::Publicity),
        "vote": has(StepKind::Vote),
        "form": matches!(kind, StepKind::Task | StepKind::Meeting | StepKind::Approval | StepKind::Filing)
            && (!def.form.is_empty() || kind == StepKind::Meeting),
        // 催办: for the roles the policy names and those the step was escalated to (issue 8).
        "urge": urgers(def, n).iter().any(|r| session.principal.roles.contains(r)),
        // 延期 (issue 11.1): for the roles `extend by` names, while something is left of `max`.
        "extend": def.extend.as_ref()
            .filter(|e| e.roles.iter().any(|r| session.principal.roles.contains(r)) && n.due_at.is_some())
            .filter(|_| n.extension_asked.is_none())
            .map(|e| (e.max.amount.saturating_sub(n.extended), e.max.unit))
            .filter(|(left, _)| *left > 0)
            .map(|(left, unit)| json!({ "left": left, "unit": super::unit_text(unit, super::lang(headers)) })),
        // 延期申请 (issue 11.1): the request waiting, for the roles of `extend … approved by`.
        "extension_asked": def.extend.as_ref()
            .filter(|e| e.approved_by.iter().any(|r| session.principal.roles.contains(r)))
            .and_then(|e| n.extension_asked.as_ref().map(|a| json!({
                "amount": a.amount,
                "unit": super::unit_text(e.max.unit, super::lang(headers)),
                "reason": a.reason,
                "at": local(Some(a.at), program.offset),
            }))),
        // 转办 (issue 11.2): for the roles `transfer by` names.
        "transfer": def.transfer.as_ref().is_some_and(|t| t.roles.iter().any(|r| session.principal.roles.contains(r))),
        // 加签/减签 (issue 11.2): the pool to add from and the approvers now.
        "approvers": def.approvers.as_ref()
            .filter(|a| a.roles.iter().any(|r| session.principal.roles.contains(r)))
            .map(|a| {
                let current = civicflow_engine::core::acting_roles(def, n).to_vec();
                let pool: Vec<&String> = a.pool.iter().filter(|r| !current.contains(r)).collect();
                json!({ "pool": pool, "current": current })
            }),
        // 退回 (issue 11.7): the targets the policy declares for the caller's roles.
        "return_to": (!return_targets.is_empty()).then_some(&return_targets),
        // 撤回: the caller's own act, while nobody has acted after it.
        "withdraw": n.acts.iter().rposition(|a| a.actor.principal == session.principal.name && a.action != "urge")
            .is_some_and(|i| n.acts.iter().skip(i + 1).all(|a| a.action == "urge")),
        // 委托: a role that acts on the step hands it to another principal.
        "delegate": civicflow_engine::core::acting_roles(def, n).iter().any(|r| session.principal.roles.contains(r)),
        // 抄送 (issue 11.2): for the roles `copy by` names, open or done.
        "copy": def.copy_by.iter().any(|r| session.principal.roles.contains(r))
            && matches!(n.status, NodeStatus::Open | NodeStatus::Done),
        // 已阅: the office's copy waits to be read.
        "mark_read": n.copies.get(&session.principal.office).is_some_and(|c| c.unread()),
    });
    let offset = program.offset;
    let page = json!({
        "instance": instance,
        "instance_href": format!("/instances/{}", enc(instance)),
        "policy": record.policy_name,
        "step": step,
        "name": def.title.clone().unwrap_or_else(|| def.name.clone()),
        "kind": super::instance::kind_text(kind),
        "status": super::instance::status_text(&instances::word(&n.status), super::lang(headers)),
        "open": n.status == NodeStatus::Open,
        "roles": def.roles.join("、"),
        "due": super::due_text(
            n.due_at,
            crate::http::instances::awaiting_year(n),
            offset,
            super::lang(headers),
            &pages.app.runtime.calendar(),
            pages.app.runtime.clock().now(),
        ),
        "window": n.window.map(|w| format!("{} – {}", local(Some(w.0), offset).unwrap_or_default(), local(Some(w.1), offset).unwrap_or_default()))
            .or_else(|| n.window_awaiting.map(|w| super::awaiting_calendar(w.year, super::lang(headers)))),
        "overdue": n.overdue,
        "key": key,
        "fields": fields,
        "actions": actions,
        "refusal": refusal.map(|(p, _)| json!({ "code": p.code, "detail": p.detail, "rule": p.rule })),
        "entered": {
            "present": entered("present"), "cast": entered("cast"), "tallies": entered("tallies"),
            "reason": entered("reason"), "opinion": entered("opinion"), "objection": entered("objection"),
            "report": entered("report"),
        },
        "done": done,
        "copies": n.copies.iter().map(|(office, c)| json!({
            "office": office, "at": local(Some(c.at), offset), "message": c.message,
            "read_by": c.read.as_ref().map(|r| r.0.clone()), "read_at": local(c.read.as_ref().map(|r| r.1), offset),
        })).collect::<Vec<_>>(),
        "acts": n.acts.iter().map(|a| json!({
            "principal": a.actor.principal, "office": a.actor.office, "role": a.actor.role,
            "action": super::words::action(&a.action, super::lang(headers)), "at": local(Some(a.at), offset), "text": a.text,
        })).collect::<Vec<_>>(),
    });
    let mut r = pages.render_status(headers, status, "act", Some(session), page);
    if let Some((p, _)) = refusal {
        super::mark_problem(&mut r, &p.code, &p.detail);
    }
    r
}

/// Acts on a step: the form becomes the API's action request, handled by the API's handler.
pub async fn act_submit(
    State(pages): State<Pages>,
    headers: HeaderMap,
    Form(f): Form<Vec<(String, String)>>,
) -> Response {
    let session = match pages.require_post(&headers, &f).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let instance = field(&f, "instance").unwrap_or_default().to_string();
    let step = field(&f, "step").unwrap_or_default().to_string();
    let action = field(&f, "action").unwrap_or_default().to_string();
    let key = field(&f, "key").map(str::to_string);
    let request = match request_of(&pages, &instance, &step, &action, &f).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let bytes = Bytes::from(serde_json::to_vec(&request).unwrap_or_default());
    let path = format!("/v1/instances/{}/steps/{}/actions", enc(&instance), enc(&step));
    let hash = {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"POST\n");
        h.update(path.as_bytes());
        h.update(b"\n");
        h.update(&bytes);
        hex::encode(h.finalize())
    };
    let result = instances::act(
        State(pages.app.clone()),
        Caller(session.principal.clone()),
        AppPath((instance.clone(), step.clone())),
        IdempotencyKey(key.map(|k| format!("page-{k}"))),
        Body { bytes, hash },
    )
    .await;
    match result {
        Ok(response) if response.status().is_success() => {
            let to = format!("/act?instance={}&step={}&done=1", enc(&instance), enc(&step));
            Redirect::to(&to).into_response()
        }
        Ok(response) => {
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
            match serde_json::from_slice::<Problem>(&body) {
                Ok(p) => {
                    render_act(&pages, &headers, &session, &instance, &step, status, Some((&p, f.as_slice())), None)
                        .await
                }
                Err(_) => pages.error(&headers, status, crate::http::codes::ProblemCode::Error.as_str(), "error", None),
            }
        }
        Err(e) => {
            let status = e.status;
            if status.is_server_error() {
                return pages.api_error(&headers, e);
            }
            render_act(&pages, &headers, &session, &instance, &step, status, Some((&e.problem, f.as_slice())), None)
                .await
        }
    }
}

/// Reads a form into the API's action request (`{action, data?, comment?}`).
async fn request_of(
    pages: &Pages,
    instance: &str,
    step: &str,
    action: &str,
    f: &[(String, String)],
) -> Result<Value, Response> {
    let text = |name: &str| field(f, name).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    Ok(match action {
        "approve" | "file" | "urge" | "approve_extension" => json!({ "action": action, "comment": text("comment") }),
        "reject_extension" => json!({ "action": action, "data": { "reason": text("reason").unwrap_or_default() } }),
        "transfer" => json!({ "action": action, "data": {
            "to": text("to").unwrap_or_default(),
            "reason": text("reason").unwrap_or_default(),
        }}),
        "return_to" => json!({ "action": action, "data": {
            "target": text("target").unwrap_or_default(),
            "reason": text("reason").unwrap_or_default(),
        }}),
        "delegate" => json!({ "action": action, "data": { "to": text("to").unwrap_or_default() } }),
        "copy_to" => json!({ "action": action, "data": {
            "to": text("to").unwrap_or_default(),
            "message": text("message"),
        }}),
        "add_approver" | "remove_approver" => json!({ "action": action, "data": {
            "role": text("role").unwrap_or_default(),
            "reason": text("reason").unwrap_or_default(),
        }}),
        "extend" => json!({ "action": action, "data": {
            "amount": text("amount").and_then(|s| s.parse::<u64>().ok()).unwrap_or(0),
            "reason": text("reason").unwrap_or_default(),
        }}),
        "complete" => json!({ "action": action, "data": { "report": text("report").unwrap_or_default() } }),
        "reject" => json!({ "action": action, "data": { "reason": text("reason").unwrap_or_default() } }),
        "give_opinion" => json!({ "action": action, "data": { "opinion": text("opinion").unwrap_or_default() } }),
        "raise_objection" => {
            json!({ "action": action, "data": { "objection": text("objection").unwrap_or_default() } })
        }
        "enter_vote" => {
            let num = |name: &str| text(name).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
            let tallies: Vec<Value> = text("tallies")
                .unwrap_or_default()
                .lines()
                .filter_map(|line| {
                    let line = line.trim();
                    let (name, votes) = line.rsplit_once(char::is_whitespace)?;
                    Some(json!({ "candidate": name.trim(), "votes": votes.trim().parse::<u64>().ok()? }))
                })
                .collect();
            json!({ "action": action, "data": {
                "present": num("present"), "cast": num("cast"), "invalid": num("invalid"), "tallies": tallies,
            }})
        }
        "submit_form" => {
            let (record, core) = pages.app.runtime.load(instance).await.map_err(|e| pages_err(pages, e.into()))?;
            let program = pages
                .app
                .runtime
                .program(&record.policy_name, Some(&record.policy_hash))
                .await
                .map_err(|e| pages_err(pages, e.into()))?;
            let def = core.nodes.get(step).and_then(|n| program.node(&n.def));
            let mut data = serde_json::Map::new();
            for fd in def.map(|d| d.form.as_slice()).unwrap_or_default() {
                let raw = field(f, &format!("f.{}", fd.name)).map(str::trim).unwrap_or("");
                let value = match fd.ty {
                    Type::Bool => Value::Bool(raw == "true"),
                    _ if raw.is_empty() => continue,
                    Type::Int | Type::Decimal | Type::Text | Type::Date | Type::Duration => Value::String(raw.into()),
                    _ => serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.into())),
                };
                data.insert(fd.name.clone(), value);
            }
            json!({ "action": action, "data": data })
        }
        _ => json!({ "action": action }),
    })
}

fn pages_err(pages: &Pages, e: crate::http::problem::ApiError) -> Response {
    pages.api_error(&HeaderMap::new(), e)
}

#[derive(Deserialize)]
pub struct DoneQuery {
    pub instance: String,
    pub step: String,
    pub done: Option<String>,
}
