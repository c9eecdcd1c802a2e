//! The caller's inbox: the open steps of running instances that one of its roles may act on (or
//! that were delegated to it), and those escalated to one of its roles (督办: a breach or a matter
//! passed on, R3.5), soonest due first.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use civicflow_dsl::ir::NodeKind;
use civicflow_engine::core::{may_do, NodeStatus, State as CoreState};
use civicflow_engine::store::{InstanceFilter, MAX_PAGE_SIZE};

use super::auth::Caller;
use super::instances::kind_word;
use super::problem::{ApiError, Problem};
use super::AppState;

/// The most instances the inbox reads.
const MAX_SCAN_PAGES: u32 = 100;

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
    /// leader: urge now).
    pub actions: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/v1/inbox",
    tag = "inbox",
    responses(
        (status = 200, description = "Open steps for the caller, soonest due first (steps without a deadline last)", body = Vec<InboxItem>),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn inbox(State(state): State<AppState>, Caller(principal): Caller) -> Result<Json<Vec<InboxItem>>, ApiError> {
    let mut items = Vec::new();
    let mut filter = InstanceFilter { policy: None, status: Some("running".into()), page: 1, page_size: MAX_PAGE_SIZE };
    loop {
        let page = state.store.list_instances(&filter).await?;
        for record in &page.items {
            let core: CoreState = CoreState::deserialize(&record.snapshot)
                .map_err(|e| ApiError::internal(format!("snapshot of `{}`: {e}", record.id)))?;
            let program = state.runtime.program(&record.policy_name, Some(&record.policy_hash)).await?;
            for (key, n) in &core.nodes {
                if n.status != NodeStatus::Open {
                    continue;
                }
                let Some(def) = program.node(&n.def) else { continue };
                if !matches!(def.kind, NodeKind::Step(_)) {
                    continue;
                }
                let escalated_role = principal.roles.iter().find(|r| n.escalated_to.contains(r)).cloned();
                let role = principal
                    .roles
                    .iter()
                    // R6.1: a bound role only for its office on this instance (or copy).
                    .find(|r| {
                        civicflow_engine::core::acting_roles(def, n).contains(r)
                            && civicflow_engine::core::may_act(&program, &core, key, r, &principal.office)
                    })
                    .cloned()
                    .or_else(|| n.delegations.get(&principal.name).map(|from| from.role.clone()))
                    .or_else(|| escalated_role.clone());
                let Some(role) = role else { continue };
                let actions = may_do(def, n, &role).into_iter().map(str::to_string).collect();
                items.push(InboxItem {
                    instance: record.id.clone(),
                    policy: record.policy_name.clone(),
                    step: key.clone(),
                    name: def.name.clone(),
                    title: def.title.clone(),
                    kind: kind_word(&def.kind),
                    role,
                    due_at: n.due_at,
                    due_awaiting_calendar: super::instances::awaiting_year(n),
                    due_note: super::instances::awaiting_year(n).map(super::instances::awaiting_words),
                    window_closes: n.window.map(|w| w.1),
                    overdue: n.overdue,
                    escalated: escalated_role.is_some(),
                    actions,
                });
            }
        }
        if page.items.len() < MAX_PAGE_SIZE as usize || filter.page >= MAX_SCAN_PAGES {
            break;
        }
        filter.page += 1;
    }
    next_cycles(&state, &principal, &mut items).await?;
    items.sort_by(|a, b| {
        (a.due_at.is_none(), a.due_at, &a.instance, &a.step).cmp(&(b.due_at.is_none(), b.due_at, &b.instance, &b.step))
    });
    Ok(Json(items))
}

/// R0.3: next cycles waiting for one of the caller's roles to start them (step `~cycle`, kind
/// `next_cycle`; `POST /v1/instances/{id}/next-cycle`), in running and completed instances.
async fn next_cycles(
    state: &AppState,
    principal: &super::auth::Principal,
    items: &mut Vec<InboxItem>,
) -> Result<(), ApiError> {
    for status in ["running", "completed"] {
        let mut filter =
            InstanceFilter { policy: None, status: Some(status.into()), page: 1, page_size: MAX_PAGE_SIZE };
        loop {
            let page = state.store.list_instances(&filter).await?;
            for record in &page.items {
                let core: CoreState = CoreState::deserialize(&record.snapshot)
                    .map_err(|e| ApiError::internal(format!("snapshot of `{}`: {e}", record.id)))?;
                let Some(next) = core.cycle.next.as_ref().filter(|n| !n.opened) else { continue };
                let Some(role) = next.awaiting.as_ref().filter(|r| principal.roles.contains(r)) else { continue };
                items.push(InboxItem {
                    instance: record.id.clone(),
                    policy: record.policy_name.clone(),
                    step: civicflow_engine::core::cycles::CYCLE_NODE.to_string(),
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
                });
            }
            if page.items.len() < MAX_PAGE_SIZE as usize || filter.page >= MAX_SCAN_PAGES {
                break;
            }
            filter.page += 1;
        }
    }
    Ok(())
}
