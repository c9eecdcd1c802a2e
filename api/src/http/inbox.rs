//! The caller's inbox: the open steps of running instances that one of its roles may act on (or
//! that were delegated to it), and those escalated to one of its roles (督办: a breach or a matter
//! passed on, R3.5), soonest due first; and the steps copied to its office for information (抄送)
//! that it has not read.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use civicflow_dsl::ir::NodeKind;
use civicflow_engine::core::cycles::CYCLE_NODE;
use civicflow_engine::core::{may_do, NodeStatus, Reader, State as CoreState, Status};
use civicflow_engine::store::{InboxCursor, InboxQuery, InstanceRecord, OpenStepRef, MAX_PAGE_SIZE};

use super::auth::{Caller, Principal};
use super::extract::AppQuery;
use super::instances::kind_word;
use super::problem::{ApiError, Problem};
use super::AppState;

/// Steps on a page of the inbox unless the caller asks for another size.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// The page of the inbox to read.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InboxPageQuery {
    /// The page, from 1 (to 2^31 − 1).
    #[param(minimum = 1, maximum = 2147483647)]
    pub page: Option<u32>,
    /// Steps per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
    /// The page after this place in the inbox: the token a `rel="next"` link carries (a page
    /// deep in a long inbox is read as fast as the first). Not with `page`.
    #[param(min_length = 1, max_length = 2048)]
    pub after: Option<String>,
}

/// An open step the caller may act on.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InboxItem {
    pub instance: String,
    pub policy: String,
    /// The step's runtime id (what the action URL names).
    pub step: String,
    pub name: String,
    pub title: Option<String>,
    pub kind: String,
    /// The role the caller would act in.
    pub role: String,
    pub due_at: Option<DateTime<Utc>>,
    /// R0.2: the deadline waits for this year's working-day calendar (`due_at` is null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_awaiting_calendar: Option<i32>,
    /// `awaiting the 2027 calendar`, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_note: Option<String>,
    pub window_closes: Option<DateTime<Utc>>,
    pub overdue: bool,
    /// The step was escalated to one of the caller's roles (已督办: its limit lapsed or the matter
    /// was passed on, R3.5): the caller is an accountable leader, not the office doing the work.
    pub escalated: bool,
    /// What the caller may do on it in `role`: the step's own actions if the role is in `by`,
    /// `return_to` where the policy declares one for it, `urge` where it may urge (an escalated
    /// leader: urge now). None while the instance is suspended.
    pub actions: Vec<String>,
    /// Issue 11.3: the instance is suspended (挂起): nothing may be done on the step until it
    /// resumes, and its deadline does not run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspended: bool,
    /// Issue 11.2: the step was copied to the caller's office for information (抄送) and it has
    /// not read it: listed read-only, with `mark_read` (已阅) among the actions — the only one
    /// unless the caller also acts on the step. The step may be done (its result) or the instance
    /// ended.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub copied: bool,
}

#[utoipa::path(
    get,
    path = "/v1/inbox",
    tag = "inbox",
    params(InboxPageQuery),
    responses(
        (status = 200, description = "One page of the open steps for the caller, soonest due first (steps without a deadline last), then by instance and step. `X-Total-Count` says how many there are in all; `Link` names the next page (`rel=\"next\"`, by `after`) and, for a numbered page, the previous one (`rel=\"prev\"`)", body = Vec<InboxItem>,
         headers(("X-Total-Count" = u64, description = "Open steps listed for the caller in all"), ("Link" = String, description = "The next and previous pages, RFC 8288"))),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad page, a token `after` this server did not give, or both `page` and `after`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn inbox(
    State(state): State<AppState>,
    Caller(principal): Caller,
    AppQuery(q): AppQuery<InboxPageQuery>,
) -> Result<(HeaderMap, Json<Vec<InboxItem>>), ApiError> {
    let page = q.page.unwrap_or(1);
    let page_size = q.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if page == 0 || page > i32::MAX as u32 || page_size == 0 || page_size > MAX_PAGE_SIZE {
        return Err(ApiError::invalid(format!(
            "pages count from 1 to {}; a page has 1 to {MAX_PAGE_SIZE} steps",
            i32::MAX
        )));
    }
    let after = match (&q.after, q.page) {
        (None, _) => None,
        (Some(_), Some(_)) => return Err(ApiError::invalid("give `page` or `after`, not both")),
        (Some(token), None) => Some(InboxCursor::decode(token).ok_or_else(|| {
            ApiError::invalid("`after` is not a place in an inbox: give the token of a `rel=\"next\"` link")
        })?),
    };
    let by_cursor = after.is_some();
    let found = inbox_page(&state, &principal, page, page_size, after).await?;
    let mut headers = HeaderMap::new();
    headers.insert("x-total-count", HeaderValue::from(found.total));
    let mut links = Vec::new();
    // More after this page: known from the total for a numbered page; after a cursor, a full
    // page may have more.
    let more = if by_cursor {
        found.listed == page_size as usize
    } else {
        u64::from(page) * u64::from(page_size) < found.total
    };
    if let (true, Some(last)) = (more, &found.last) {
        links.push(format!("</v1/inbox?after={}&page_size={page_size}>; rel=\"next\"", last.encode()));
    }
    if !by_cursor && page > 1 {
        links.push(format!("</v1/inbox?page={}&page_size={page_size}>; rel=\"prev\"", page - 1));
    }
    if let (false, Ok(v)) = (links.is_empty(), HeaderValue::from_str(&links.join(", "))) {
        headers.insert(header::LINK, v);
    }
    Ok((headers, Json(found.items)))
}

/// A page of an inbox as read: its items, the steps listed in all, how many steps the store
/// listed for the page (a step acted on between the two reads is listed but left out) and the
/// place the page ends at.
pub struct InboxPage {
    pub items: Vec<InboxItem>,
    pub total: u64,
    pub listed: usize,
    pub last: Option<InboxCursor>,
}

/// One page of the caller's inbox and how many steps it lists in all (issue 10.6): the page is
/// read from the store's open-step table, then only its instances are loaded, for the words and
/// the actions. A step that moved between the two reads (acted on meanwhile) is left out.
pub async fn inbox_page(
    state: &AppState,
    principal: &Principal,
    page: u32,
    page_size: u32,
    after: Option<InboxCursor>,
) -> Result<InboxPage, ApiError> {
    let readers = Reader::keys_of(&principal.name, &principal.office, &principal.roles);
    let query = InboxQuery { readers, page, page_size, after };
    let listed = state.store.inbox(&query).await?;
    let mut ids: Vec<String> = listed.items.iter().map(|r| r.instance.clone()).collect();
    ids.sort();
    ids.dedup();
    let mut instances: HashMap<String, (InstanceRecord, CoreState)> = HashMap::new();
    for record in state.store.load_instances(&ids).await? {
        let core = CoreState::deserialize(&record.snapshot)
            .map_err(|e| ApiError::internal(format!("snapshot of `{}`: {e}", record.id)))?;
        instances.insert(record.id.clone(), (record, core));
    }
    let mut items = Vec::with_capacity(listed.items.len());
    for row in &listed.items {
        let Some((record, core)) = instances.get(&row.instance) else { continue };
        let item = if row.node == CYCLE_NODE {
            next_cycle_item(principal, record, core)
        } else {
            step_item(state, principal, record, core, row).await?
        };
        items.extend(item);
    }
    Ok(InboxPage {
        items,
        total: listed.total,
        listed: listed.items.len(),
        last: listed.items.last().map(InboxCursor::after),
    })
}

/// The open step `row` names, as the caller may act on it.
async fn step_item(
    state: &AppState,
    principal: &Principal,
    record: &InstanceRecord,
    core: &CoreState,
    row: &OpenStepRef,
) -> Result<Option<InboxItem>, ApiError> {
    let key = &row.node;
    let Some(n) = core.nodes.get(key) else { return Ok(None) };
    let program = state.runtime.program(&record.policy_name, Some(&record.policy_hash)).await?;
    let Some(def) = program.node(&n.def) else { return Ok(None) };
    // 抄送 (issue 11.2): listed whatever became of the step, until the office reads it.
    let copied = n.copies.get(&principal.office).is_some_and(|c| c.unread());
    let acts = n.status == NodeStatus::Open && core.status == Status::Running && matches!(def.kind, NodeKind::Step(_));
    let escalated_role = principal.roles.iter().find(|r| acts && n.escalated_to.contains(r)).cloned();
    let role = principal
        .roles
        .iter()
        // R6.1: a bound role only for its office on this instance (or copy).
        .find(|r| {
            acts && civicflow_engine::core::acting_roles(def, n).contains(r)
                && civicflow_engine::core::may_act(&program, core, key, r, &principal.office)
        })
        .cloned()
        .or_else(|| n.delegations.get(&principal.name).filter(|_| acts).map(|from| from.role.clone()))
        .or_else(|| escalated_role.clone());
    let suspended = core.suspended.is_some();
    let (role, mut actions) = match role {
        Some(role) if !suspended => {
            let actions = may_do(def, n, &role).into_iter().map(str::to_string).collect();
            (role, actions)
        }
        Some(role) => (role, Vec::new()),
        // Read in any of the caller's roles: reading is the office's.
        None if copied => (principal.roles.first().cloned().unwrap_or_default(), Vec::new()),
        None => return Ok(None),
    };
    if copied {
        actions.push("mark_read".to_string());
    }
    Ok(Some(InboxItem {
        instance: record.id.clone(),
        policy: record.policy_name.clone(),
        step: key.clone(),
        name: def.name.clone(),
        title: def.title.clone(),
        kind: kind_word(&def.kind),
        role,
        due_at: n.due_at.filter(|_| acts),
        due_awaiting_calendar: super::instances::awaiting_year(n).filter(|_| acts),
        due_note: super::instances::awaiting_year(n).filter(|_| acts).map(super::instances::awaiting_words),
        window_closes: n.window.map(|w| w.1).filter(|_| acts),
        overdue: n.overdue && acts,
        escalated: escalated_role.is_some(),
        actions,
        suspended,
        copied,
    }))
}

/// R0.3: a next cycle waiting for one of the caller's roles to start it (step `~cycle`, kind
/// `next_cycle`; `POST /v1/instances/{id}/next-cycle`).
fn next_cycle_item(principal: &Principal, record: &InstanceRecord, core: &CoreState) -> Option<InboxItem> {
    let next = core.cycle.next.as_ref().filter(|n| !n.opened)?;
    let role = next.awaiting.as_ref().filter(|r| principal.roles.contains(r))?;
    Some(InboxItem {
        instance: record.id.clone(),
        policy: record.policy_name.clone(),
        step: CYCLE_NODE.to_string(),
        name: "下一周期".to_string(),
        title: Some(format!("启动下一周期 {}", next.instance)),
        kind: "next_cycle".to_string(),
        role: role.clone(),
        due_at: Some(next.due_at),
        due_awaiting_calendar: None,
        due_note: None,
        window_closes: None,
        overdue: false,
        escalated: false,
        actions: vec!["next_cycle".to_string()],
        suspended: false,
        copied: false,
    })
}
