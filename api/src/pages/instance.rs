//! Instances: the list (paginated), and one instance's page — phases and steps as a timeline
//! against today (windows, due dates, done, late), the compiled graph as SVG with the current
//! position marked, and who acted when.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use civicflow_dsl::ir::StepKind;
use civicflow_engine::store::InstanceFilter;

use crate::http::instances::current_view_for;
use crate::http::problem::Problem;

use super::{enc, local, Pager, Pages, Session, PAGE_SIZE};

/// The most acts the instance page lists (the latest; the audit trail pages through all).
const MAX_ACTS: usize = 100;

#[derive(Deserialize)]
pub struct ListQuery {
    pub page: Option<usize>,
    pub policy: Option<String>,
}

/// A status or outcome word with its Chinese in front (`已完成 done`), or as it is in English.
pub fn status_text(word: &str, lang: super::Lang) -> String {
    let zh = match word {
        "waiting" => "等待中",
        "open" => "办理中",
        "done" => "已完成",
        "skipped" => "已跳过",
        "running" => "进行中",
        "completed" => "已办结",
        "cancelled" => "已撤销",
        "approved" => "同意",
        "rejected" => "不同意",
        "filed" => "已备案",
        "elected" => "选举有效",
        _ => "",
    };
    if lang == super::Lang::Zh && !zh.is_empty() {
        format!("{zh} {word}")
    } else {
        word.to_string()
    }
}

/// The Chinese word of a step kind.
pub fn kind_text(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Task => "任务 task",
        StepKind::Approval => "审批 approval",
        StepKind::Filing => "备案 filing",
        StepKind::Consultation => "征求意见 consultation",
        StepKind::Publicity => "公示 publicity",
        StepKind::Vote => "投票 vote",
        StepKind::Meeting => "会议 meeting",
    }
}

/// Issue 11.7: the timeline grouped by its top-level phases (the 48 steps of an election in its
/// four phases), each with how many of its steps are done, open and late, and open on the page
/// when it has something open or late (a phase done, or not begun, is folded).
fn by_phase(steps: &[Value]) -> Vec<Value> {
    let mut groups: Vec<(Value, Vec<Value>)> = Vec::new();
    for s in steps {
        if s["depth"].as_u64() == Some(0) || groups.is_empty() {
            groups.push((s.clone(), Vec::new()));
        }
        if let Some((_, rows)) = groups.last_mut() {
            rows.push(s.clone());
        }
    }
    groups
        .into_iter()
        .map(|(head, rows)| {
            let leaves: Vec<&Value> = rows.iter().filter(|r| r["phase"] != true).collect();
            let count = |key: &str| leaves.iter().filter(|r| r[key] == true).count();
            let (open, late) = (count("open"), count("late"));
            json!({
                "id": head["id"],
                "name": head["name"],
                "status": head["status"],
                "window": head["window"],
                "done": count("done"),
                "total": leaves.len(),
                "open": open,
                "late": late,
                // A step alone (not in a phase) is always shown; a phase when it has work.
                "expanded": open > 0 || late > 0 || head["open"] == true || head["phase"] != true,
                "rows": rows,
            })
        })
        .collect()
}

pub async fn list(State(pages): State<Pages>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    let session = match pages.require(&headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let policy = q.policy.filter(|p| !p.is_empty());
    let page = q.page.unwrap_or(1).max(1);
    let filter = InstanceFilter {
        policy: policy.clone(),
        page: u32::try_from(page).unwrap_or(u32::MAX),
        page_size: PAGE_SIZE as u32,
        ..InstanceFilter::default()
    };
    let found = match pages.app.store.list_instances(&filter).await {
        Ok(f) => f,
        Err(e) => return pages.api_error(&headers, e.into()),
    };
    let pager = Pager::new(Some(page), usize::try_from(found.total).unwrap_or(usize::MAX), PAGE_SIZE);
    let tz = super::shanghai();
    let lang = super::lang(&headers);
    let rows: Vec<Value> = found
        .items
        .iter()
        .map(|r| {
            json!({
                "id": r.id, "policy": r.policy_name, "status": super::words::instance_status(&r.status, lang), "version": r.version,
                "created": local(Some(r.created_at), tz), "updated": local(Some(r.updated_at), tz),
                "href": format!("/instances/{}", enc(&r.id)),
            })
        })
        .collect();
    let suffix = policy.as_deref().map(|p| format!("&policy={}", enc(p))).unwrap_or_default();
    pages.render(&headers, "instances", Some(&session), json!({ "items": rows, "pager": pager, "suffix": suffix }))
}

pub async fn page(State(pages): State<Pages>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let session = match pages.require(&headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    render(&pages, &headers, &session, &id, StatusCode::OK, None).await
}

/// The instance page, with the refusal of a form sent from it (and what was entered).
pub(super) async fn render(
    pages: &Pages,
    headers: &HeaderMap,
    session: &Session,
    id: &str,
    status: StatusCode,
    refusal: Option<(&Problem, &[(String, String)])>,
) -> Response {
    let headers = headers.clone();
    let view = match current_view_for(&pages.app, id, &session.principal).await {
        Ok(v) => v,
        Err(e) => return pages.api_error(&headers, e),
    };
    let program = match pages.app.runtime.program(&view.policy, Some(&view.policy_hash)).await {
        Ok(p) => p,
        Err(e) => return pages.api_error(&headers, e.into()),
    };
    let tz = program.offset;
    let now = pages.app.runtime.clock().now();
    let lang = super::lang(&headers);
    let calendar = pages.app.runtime.calendar();

    // The timeline's span: every window, due date and act, and today.
    let mut instants: Vec<DateTime<Utc>> = vec![now];
    for s in &view.steps {
        instants.extend([s.window_opens, s.window_closes, s.due_at, s.opened_at, s.closed_at].into_iter().flatten());
    }
    let lo = instants.iter().min().copied().unwrap_or(now);
    let hi = instants.iter().max().copied().unwrap_or(now);
    let span = (hi - lo).num_seconds().max(1) as f64;
    let pct = |t: DateTime<Utc>| ((t - lo).num_seconds() as f64 / span * 100.0).clamp(0.0, 100.0);
    let fmt = |x: f64| format!("{x:.2}");

    let steps: Vec<Value> = view
        .steps
        .iter()
        .map(|s| {
            let start = s.window_opens.or(s.opened_at);
            let end = s.window_closes.or(s.due_at).or(s.closed_at);
            let bar = match (start, end) {
                (Some(a), Some(b)) if b >= a => Some(json!({ "left": fmt(pct(a)), "width": fmt((pct(b) - pct(a)).max(0.5)) })),
                _ => None,
            };
            let late = s.overdue
                || matches!((s.due_at, s.closed_at), (Some(d), Some(c)) if c > d)
                || (s.status == "open" && s.due_at.is_some_and(|d| d < now));
            json!({
                "id": s.id,
                "name": s.title.clone().unwrap_or_else(|| s.name.clone()),
                "depth": s.id.matches('/').count(),
                "indent": s.id.matches('/').count() * 16,
                "kind": s.kind,
                "phase": s.kind == "phase" || s.kind == "call",
                "status": status_text(&s.status, lang),
                "outcome": s.outcome.as_deref().map(|o| status_text(o, lang)),
                "done": s.status == "done",
                "open": s.status == "open",
                "late": late,
                "window": match (s.window_opens, s.window_closes, s.window_awaiting_calendar) {
                    (Some(a), Some(b), _) => Some(format!("{} – {}", local(Some(a), tz).unwrap_or_default(), local(Some(b), tz).unwrap_or_default())),
                    (_, _, Some(year)) => Some(super::awaiting_calendar(year, lang)),
                    _ => None,
                },
                "due": super::due_text(s.due_at, s.due_awaiting_calendar, tz, lang, &calendar, now),
                "due_at": s.due_at.map(|d| fmt(pct(d))),
                "closed": local(s.closed_at, tz),
                "closed_at": s.closed_at.map(|d| fmt(pct(d))),
                "bar": bar,
                "awaiting": s.awaiting.join("、"),
                "act_href": (s.status == "open" && s.kind != "phase" && s.kind != "call")
                    .then(|| format!("/act?instance={}&step={}", enc(&view.id), enc(&s.id))),
            })
        })
        .collect();
    let groups = by_phase(&steps);
    let mut acts: Vec<Value> = Vec::new();
    for s in &view.steps {
        for a in &s.acts {
            acts.push(json!({
                "sort": a.at, "at": local(Some(a.at), tz), "step": s.title.clone().unwrap_or_else(|| s.name.clone()),
                "principal": a.principal, "office": a.office, "role": a.role, "action": super::words::action(&a.action, lang), "text": a.text,
            }));
        }
    }
    acts.sort_by(|a, b| a["sort"].as_str().cmp(&b["sort"].as_str()));
    // The latest acts; the audit trail has them all, paginated.
    let all_acts = acts.len();
    let acts: Vec<Value> = acts.split_off(all_acts.saturating_sub(MAX_ACTS));
    let open: Vec<&str> = view.steps.iter().filter(|s| s.status == "open").map(|s| s.id.as_str()).collect::<Vec<_>>();
    let done: Vec<&str> = view.steps.iter().filter(|s| s.status == "done").map(|s| s.id.as_str()).collect();
    let svg = super::graph::svg(&program.policy, &open, &done);
    let params: Vec<Value> = view.params.iter().map(|(k, v)| json!({ "name": k, "value": v.to_string() })).collect();
    let page = json!({
        "id": view.id,
        "policy": view.policy,
        "policy_href": format!("/policies/{}", enc(&view.policy)),
        "status": super::words::instance_status(&view.status, lang),
        "version": view.version,
        "started": local(view.started_at, tz),
        "cycle": view.cycle,
        "previous": view.previous,
        "previous_href": view.previous.as_ref().map(|p| format!("/instances/{}", enc(p))),
        "next_cycle_due": view.next_cycle_due.map(|d| local(Some(d), tz)),
        // The next cycle's id links only once it exists (not while it waits to be started or
        // after it could not open).
        "next_cycle": view.next_cycle.as_ref().filter(|_| view.next_cycle_awaiting.is_none() && view.next_cycle_refused.is_none()),
        "next_cycle_href": view.next_cycle.as_ref().map(|p| format!("/instances/{}", enc(p))),
        "next_cycle_awaiting": view.next_cycle_awaiting,
        "next_cycle_refused": view.next_cycle_refused,
        "today": local(Some(now), tz),
        "today_at": fmt(pct(now)),
        "from": local(Some(lo), tz),
        "to": local(Some(hi), tz),
        "groups": groups,
        "acts": acts,
        "acts_more": all_acts > MAX_ACTS,
        "acts_total": all_acts,
        "acts_shown": all_acts.min(MAX_ACTS),
        "svg": svg,
        "params": params,
        "audit_href": format!("/instances/{}/audit", enc(&view.id)),
        "notice_href": format!("/instances/{}/notice", enc(&view.id)),
        "has_notice": !program.policy.templates.is_empty(),
        "start_next": super::cycle::start_form(pages, session, id, refusal.map(|(_, f)| f)).await,
        "suspension": super::suspension::section(&program.policy, tz, &view, session),
        "correction": super::correction::section(&program.policy, &view, session),
        "refusal": refusal.map(|(p, _)| json!({ "code": p.code, "detail": p.detail, "rule": p.rule })),
    });
    let mut r = pages.render_status(&headers, status, "instance", Some(session), page);
    if let Some((p, _)) = refusal {
        super::mark_problem(&mut r, &p.code, &p.detail);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_11_7_the_timeline_is_grouped_by_top_level_phase_with_its_counts() {
        let row = |id: &str, phase: bool, done: bool, open: bool, late: bool| {
            json!({ "id": id, "name": id, "depth": id.matches('/').count(), "phase": phase, "done": done,
                    "open": open, "late": late, "status": "", "window": null })
        };
        let steps = vec![
            row("选前准备", true, false, true, false),
            row("选前准备/成立工作机构", false, true, false, false),
            row("选前准备/制定工作方案", false, false, true, true),
            row("正式选举", true, false, false, false),
            row("正式选举/党组织换届", true, false, false, false),
            row("正式选举/党组织换届/公开推荐", false, false, false, false),
            row("换届交接", false, true, false, false),
        ];
        let groups = by_phase(&steps);
        let summary: Vec<(String, u64, u64, u64, u64, bool, usize)> = groups
            .iter()
            .map(|g| {
                let n = |k: &str| g[k].as_u64().unwrap_or(99);
                let rows = g["rows"].as_array().map_or(0, Vec::len);
                (
                    g["id"].as_str().unwrap_or("").to_string(),
                    n("done"),
                    n("total"),
                    n("open"),
                    n("late"),
                    g["expanded"] == true,
                    rows,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("选前准备".to_string(), 1, 2, 1, 1, true, 3),
                ("正式选举".to_string(), 0, 1, 0, 0, false, 3),
                ("换届交接".to_string(), 1, 1, 0, 0, true, 1),
            ]
        );
    }
}
