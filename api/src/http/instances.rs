//! Instances: start, list, read (now or `as_of`), act on a step.
//!
//! The principal's role is chosen here: the one the request names (it must hold it), else the
//! first of its roles that the step names in `by`, else its first role — and then the core
//! refuses with R006 (403), recording nothing. Parameters and form data arrive as plain JSON and
//! are read with the policy's types (`civicflow_dsl::value::from_json`); what does not fit is
//! refused with the core's own codes (R011, R012).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use civicflow_dsl::ir::{self, NodeKind};
use civicflow_dsl::value::{from_json, to_json, Value};
use civicflow_engine::core::{
    Action, Actor, NodeState, NodeStatus, Program, Refusal, RefusalClass, State as CoreState, Tally, VoteCounts,
};
use civicflow_engine::runtime::{Outcome, RuntimeError};
use civicflow_engine::store::{InstanceFilter, InstanceRecord, MAX_PAGE_SIZE};

use super::auth::{Caller, Principal};
use super::extract::{replayed, AppPath, AppQuery, Body, IdempotencyKey, InFlight};
use super::history::EventView;
use super::problem::{ApiError, Problem};
use super::AppState;

/// Start an instance.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The policy's name.
    pub policy: String,
    /// A version: its hash, or the label written in the policy (`2012.1`); the latest if absent.
    #[serde(default)]
    pub version: Option<String>,
    /// The policy's parameters as plain JSON (numbers, `"13/10"`, `"YYYY-MM-DD"`, lists, records).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// An id of the caller's choosing (1 to 64 letters, Chinese included, and digits, with `-`, `_`, `.` after the first); generated if absent.
    #[serde(default)]
    pub id: Option<String>,
}

/// Act on a step.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActRequest {
    /// `submit_form`, `complete`, `approve`, `reject`, `file`, `give_opinion`, `enter_vote`,
    /// `raise_objection`, `return_to`, `withdraw`, `delegate` or `urge`.
    pub action: String,
    /// What the action carries: `submit_form` the form's fields; `enter_vote`
    /// `{present, cast, invalid, tallies: [{candidate, votes}]}`; `return_to` `{target, reason}`;
    /// `delegate` `{to}`; `complete` `{report}`; `reject` `{reason}`; `give_opinion`
    /// `{opinion}`; `raise_objection` `{objection}` (a text may also come as `comment`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
    /// A comment recorded with the act.
    #[serde(default)]
    pub comment: Option<String>,
    /// The role to act in, when the principal has several.
    #[serde(default)]
    pub role: Option<String>,
}

/// What a command recorded.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CommandResult {
    pub instance: String,
    /// The instance's version (the seq of its last event) after the command.
    pub version: u64,
    /// The events the command recorded.
    pub events: Vec<EventView>,
    /// Whether this is the stored result of an earlier request with the same idempotency key.
    pub replayed: bool,
}

/// An instance's state: its steps with status, dates, who acted, what is awaited.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct InstanceView {
    pub id: String,
    pub policy: String,
    pub policy_hash: String,
    /// `running`, `completed`, `rejected` or `cancelled`.
    pub status: String,
    /// The number of events folded into this state.
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    /// The instant this state is as of, for `?as_of=`.
    pub as_of: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Derived values (sizes, types) computed from the parameters at the start.
    #[schema(value_type = Object)]
    pub values: serde_json::Map<String, serde_json::Value>,
    /// Phases, calls and steps in the policy's order.
    pub steps: Vec<StepView>,
    /// R0.3: which cycle of a recurring procedure this instance is (1 for the first).
    pub cycle: u32,
    /// The instance of the cycle before, for a later cycle.
    pub previous: Option<String>,
    /// When the next cycle is (or was) due; `None` for a procedure that does not recur, or
    /// while the anchor of its period has not happened.
    pub next_cycle_due: Option<DateTime<Utc>>,
    /// The next cycle's instance id, once it is due.
    pub next_cycle: Option<String>,
    /// The role whose task it is to start the next cycle (it needs fresh parameters), until it
    /// is started.
    pub next_cycle_awaiting: Option<String>,
    /// The next cycle fell due but could not open by itself: the refusal's code and words
    /// (event `next_cycle_refused`); recorded once, not retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cycle_refused: Option<String>,
}

/// Start the next cycle (R0.3) with the parameters it needs afresh.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NextCycleRequest {
    /// The parameters neither carried over nor defaulted, as plain JSON.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The role to act in, when the principal has several.
    #[serde(default)]
    pub role: Option<String>,
}

/// One phase, call or step of an instance.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StepView {
    /// The runtime id (`phase/step`, `step[2]` for a fan-out copy): what the action URL names.
    pub id: String,
    pub name: String,
    pub title: Option<String>,
    /// `phase`, `call`, or the step kind (`task`, `approval`, `filing`, `consultation`,
    /// `publicity`, `vote`, `meeting`).
    pub kind: String,
    /// `waiting`, `open`, `done` or `skipped`.
    pub status: String,
    /// `done`, `approved`, `rejected` or `filed`.
    pub outcome: Option<String>,
    /// The roles entitled to act.
    pub roles: Vec<String>,
    /// The roles that have not acted yet on an open step.
    pub awaiting: Vec<String>,
    pub opened_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub window_opens: Option<DateTime<Utc>>,
    /// Acting is allowed before this instant.
    pub window_closes: Option<DateTime<Utc>>,
    /// R0.2: the window counts working days into this year, whose calendar is not published
    /// yet; `window_opens` / `window_closes` are null and acting is refused (R027) until the
    /// year is added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_awaiting_calendar: Option<i32>,
    pub due_at: Option<DateTime<Utc>>,
    /// R0.2: the deadline counts working days into this year, whose calendar is not published
    /// yet; `due_at` is null until the year is added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_awaiting_calendar: Option<i32>,
    /// The deadline in words when it has no instant: `awaiting the 2027 calendar`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_note: Option<String>,
    pub min_until: Option<DateTime<Utc>>,
    /// R0.2: the same for a minimum duration in working days (the step cannot end before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_awaiting_calendar: Option<i32>,
    pub overdue: bool,
    pub escalated_to: Vec<String>,
    /// `on breach reassign R` (提级办理): the role that took the late step over and alone acts on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassigned_to: Option<String>,
    /// How many times a return reopened it.
    pub round: u32,
    pub acts: Vec<ActView>,
    #[schema(value_type = Option<Object>)]
    pub form: Option<serde_json::Value>,
    pub vote: Option<VoteView>,
}

/// An act recorded on a step.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ActView {
    pub principal: String,
    pub office: String,
    pub role: String,
    pub action: String,
    pub at: DateTime<Utc>,
    pub text: Option<String>,
}

/// A vote as decided.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct VoteView {
    pub eligible: u64,
    pub seats: Option<u64>,
    pub counts: VoteCountsView,
    pub elected: Vec<String>,
}

/// The counts of a vote; `cast` includes the invalid ballots (R2.16).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteCountsView {
    pub present: u64,
    pub cast: u64,
    #[serde(default)]
    pub invalid: u64,
    pub tallies: Vec<TallyView>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TallyView {
    pub candidate: String,
    pub votes: u64,
}

/// One line of a listing.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InstanceSummary {
    pub id: String,
    pub policy: String,
    pub policy_hash: String,
    pub status: String,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Open steps.
    pub open_steps: Vec<String>,
    /// Open steps past their deadline.
    pub overdue_steps: Vec<String>,
}

/// A page of instances.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InstancePage {
    pub items: Vec<InstanceSummary>,
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
}

/// Filters of the listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only instances of this policy.
    pub policy: Option<String>,
    /// Only instances with this status (`running`, `completed`, `rejected`, `cancelled`).
    pub status: Option<String>,
    /// Only instances with (`true`) or without (`false`) an open step past its deadline.
    pub overdue: Option<bool>,
    /// Only instances with an open step for this office (role).
    pub office: Option<String>,
    /// The page, from 1.
    pub page: Option<u32>,
    /// Instances per page, 1 to 1000 (default 50).
    pub page_size: Option<u32>,
}

/// The instant to read the state at.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AsOfQuery {
    /// An RFC 3339 instant (`2012-04-01T09:00:00+08:00`): the state replayed from the events up to it.
    pub as_of: Option<String>,
}

/// How many instances a filtered listing reads at most (`overdue`, `office` are judged on the
/// states, not in the database).
const MAX_SCAN: u32 = 100_000;

#[utoipa::path(
    post,
    path = "/v1/instances",
    tag = "instances",
    request_body = StartRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe: the same key with the same body returns the first result")),
    responses(
        (status = 201, description = "Started", body = CommandResult),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The principal holds no role of the policy", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such policy or version", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Same key in flight, or the id is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Parameters break a rule (R011), or the key was used for another request", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn start(
    State(state): State<AppState>,
    Caller(principal): Caller,
    key: IdempotencyKey,
    body: Body,
) -> Result<Response, ApiError> {
    let request: StartRequest = body.json()?;
    let _guard = InFlight::begin(&state.inflight, &principal.name, &key)?;
    let hash = resolve_version(&state, &request.policy, request.version.as_deref()).await?;
    let program = state.runtime.program(&request.policy, hash.as_deref()).await?;
    let role = principal
        .roles
        .iter()
        .find(|r| program.policy.roles.iter().any(|pr| &pr.name == *r))
        .cloned()
        .or_else(|| principal.is_admin().then(|| super::auth::ADMIN_ROLE.to_string()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "NOT_A_ROLE_OF_POLICY",
                format!("`{}` holds no role of policy `{}`", principal.name, request.policy),
            )
        })?;
    let params = read_params(&program, &request.params)?;
    let id = match request.id {
        Some(id) => check_id(&id)?,
        None => new_id()?,
    };
    let actor = Actor { principal: principal.name.clone(), office: principal.office.clone(), role };
    let outcome = state
        .runtime
        .start(&id, &request.policy, Some(&program.hash), &actor, params, key.with(&body))
        .await
        .map_err(|e| counted(&state, "start", e))?;
    respond(&state, "start", StatusCode::CREATED, outcome).await
}

#[utoipa::path(
    get,
    path = "/v1/instances",
    tag = "instances",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of instances, oldest first", body = InstancePage),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad filter or page", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    Caller(_principal): Caller,
    AppQuery(q): AppQuery<ListQuery>,
) -> Result<Json<InstancePage>, ApiError> {
    let page = q.page.unwrap_or(1);
    let page_size = q.page_size.unwrap_or(50);
    if page == 0 || page_size == 0 || page_size > MAX_PAGE_SIZE {
        return Err(ApiError::invalid(format!("pages count from 1; a page has 1 to {MAX_PAGE_SIZE} instances")));
    }
    let filter = InstanceFilter { policy: q.policy.clone(), status: q.status.clone(), page, page_size };
    if q.overdue.is_none() && q.office.is_none() {
        let found = state.store.list_instances(&filter).await?;
        let items = found.items.iter().map(summary).collect::<Result<Vec<_>, _>>()?;
        return Ok(Json(InstancePage { items, total: found.total, page, page_size }));
    }
    // Judged on each instance's state: read them all (bounded), filter, then page.
    let mut matching = Vec::new();
    let mut scan = InstanceFilter { page: 1, page_size: MAX_PAGE_SIZE, ..filter };
    loop {
        let found = state.store.list_instances(&scan).await?;
        for record in &found.items {
            let s = summary(record)?;
            let overdue_ok = q.overdue.is_none_or(|want| want != s.overdue_steps.is_empty());
            let office_ok = match &q.office {
                None => true,
                Some(office) => awaits_office(&state, record, office).await?,
            };
            if overdue_ok && office_ok {
                matching.push(s);
            }
        }
        if found.items.len() < MAX_PAGE_SIZE as usize || scan.page * MAX_PAGE_SIZE >= MAX_SCAN {
            break;
        }
        scan.page += 1;
    }
    let total = matching.len() as u64;
    let skip = (page as usize - 1).saturating_mul(page_size as usize);
    let items = matching.into_iter().skip(skip).take(page_size as usize).collect();
    Ok(Json(InstancePage { items, total, page, page_size }))
}

#[utoipa::path(
    get,
    path = "/v1/instances/{id}",
    tag = "instances",
    params(("id" = String, Path, description = "The instance id"), AsOfQuery),
    responses(
        (status = 200, description = "The state (now, or replayed as of an instant)", body = InstanceView),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such instance (or not yet at `as_of`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`as_of` is not an RFC 3339 instant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(principal): Caller,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<AsOfQuery>,
) -> Result<Json<InstanceView>, ApiError> {
    match q.as_of {
        // R6.2: personal values only for bound offices and oversight.
        None => Ok(Json(current_view_for(&state, &id, &principal).await?)),
        Some(text) => {
            let at = DateTime::parse_from_rfc3339(&text)
                .map_err(|_| ApiError::invalid(format!("`as_of` must be an RFC 3339 instant, got `{text}`")))?
                .with_timezone(&Utc);
            // R6.2: who sees personal data is decided on the instance as it is now.
            let (record, now) = state.runtime.load(&id).await?;
            if at < record.created_at {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    format!("instance `{id}` did not exist yet at {}", at.to_rfc3339()),
                ));
            }
            let program = state.runtime.program(&record.policy_name, Some(&record.policy_hash)).await?;
            let mut core = state.runtime.state_as_of(&id, at).await?;
            if super::personal::must_redact(&program, &now, &principal) {
                civicflow_engine::core::personal::redact_state(&program, &mut core);
            }
            Ok(Json(view(&record, &program, &core, Some(at))))
        }
    }
}

#[utoipa::path(
    post,
    path = "/v1/instances/{id}/steps/{step}/actions",
    tag = "instances",
    request_body = ActRequest,
    params(
        ("id" = String, Path, description = "The instance id"),
        ("step" = String, Path, description = "The step's runtime id, percent-encoded (`/` as `%2F`)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe: the same key with the same body returns the first result"),
    ),
    responses(
        (status = 200, description = "Recorded", body = CommandResult),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may not act on this step (R006), or the principal does not hold the role named", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such instance", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The step is not open (R005), outside its window (R008, R009), not this role's turn …: the problem carries the current `state`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The data breaks a rule: the rule's message and code (R012 field, R013 form rule, R014 quorum …), or the key was used for another request", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn act(
    State(state): State<AppState>,
    Caller(principal): Caller,
    AppPath((id, step)): AppPath<(String, String)>,
    key: IdempotencyKey,
    body: Body,
) -> Result<Response, ApiError> {
    let request: ActRequest = body.json()?;
    let _guard = InFlight::begin(&state.inflight, &principal.name, &key)?;
    let (record, core) = state.runtime.load(&id).await?;
    let program = state.runtime.program(&record.policy_name, Some(&record.policy_hash)).await?;
    let node = core.nodes.get(&step).and_then(|n| program.node(&n.def));
    let role = choose_role(&principal, request.role.as_deref(), node)?;
    let action = read_action(&step, node, &request)?;
    let actor = Actor { principal: principal.name.clone(), office: principal.office.clone(), role };
    match state.runtime.act(&id, &actor, &step, action, request.comment.clone(), key.with(&body)).await {
        Ok(outcome) => respond(&state, "act", StatusCode::OK, outcome).await,
        Err(RuntimeError::Refused(r)) if r.class() == RefusalClass::Conflict => {
            state.metrics.inc("civicflow_commands_total", &[("command", "act"), ("result", "refused")]);
            // The current state goes with the refusal, redacted as for a read (R6.2).
            let current = current_view_for(&state, &id, &principal).await?;
            Err(ApiError::from(r).with_state(current))
        }
        Err(e) => Err(counted(&state, "act", e)),
    }
}

#[utoipa::path(
    post,
    path = "/v1/instances/{id}/next-cycle",
    tag = "instances",
    request_body = NextCycleRequest,
    params(
        ("id" = String, Path, description = "The instance whose next cycle is due"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe: the same key with the same body returns the first result"),
    ),
    responses(
        (status = 201, description = "The next cycle started; the `next_cycle_opened` event names its id", body = CommandResult),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may not start the next cycle (R006)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such instance", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No next cycle is waiting to be started (R042)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is missing, carried over, or breaks a rule (R011)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn next_cycle(
    State(state): State<AppState>,
    Caller(principal): Caller,
    AppPath(id): AppPath<String>,
    key: IdempotencyKey,
    body: Body,
) -> Result<Response, ApiError> {
    let request: NextCycleRequest = body.json()?;
    let _guard = InFlight::begin(&state.inflight, &principal.name, &key)?;
    let (record, core) = state.runtime.load(&id).await?;
    let program = state.runtime.program(&record.policy_name, Some(&record.policy_hash)).await?;
    let awaiting = core.cycle.next.as_ref().and_then(|n| n.awaiting.clone());
    let role = match request.role.as_deref() {
        Some(_) => choose_role(&principal, request.role.as_deref(), None)?,
        None => awaiting
            .filter(|r| principal.roles.contains(r))
            .or_else(|| principal.roles.first().cloned())
            .ok_or_else(|| ApiError::admin_required("starting a cycle"))?,
    };
    let params = read_params(&program, &request.params)?;
    let actor = Actor { principal: principal.name.clone(), office: principal.office.clone(), role };
    let outcome = state
        .runtime
        .start_next_cycle(&id, &actor, params, key.with(&body))
        .await
        .map_err(|e| counted(&state, "next_cycle", e))?;
    respond(&state, "next_cycle", StatusCode::CREATED, outcome).await
}

/// The response of a start or an act: the outcome with the events it recorded.
async fn respond(state: &AppState, command: &str, status: StatusCode, outcome: Outcome) -> Result<Response, ApiError> {
    let result = if outcome.replayed { "replayed" } else { "ok" };
    state.metrics.inc("civicflow_commands_total", &[("command", command), ("result", result)]);
    let events = match (outcome.seqs.first(), outcome.seqs.len()) {
        (Some(first), n) => state.store.events(&outcome.instance, first.saturating_sub(1), n as u32).await?,
        (None, _) => Vec::new(),
    };
    let body = CommandResult {
        instance: outcome.instance.clone(),
        version: outcome.version,
        events: events.iter().map(EventView::from).collect(),
        replayed: outcome.replayed,
    };
    let response = (status, Json(body)).into_response();
    Ok(if outcome.replayed { replayed(response) } else { response })
}

/// Counts a failed command and converts its error.
fn counted(state: &AppState, command: &str, e: RuntimeError) -> ApiError {
    let result =
        if matches!(e, RuntimeError::Refused(_) | RuntimeError::KeyReused { .. }) { "refused" } else { "error" };
    state.metrics.inc("civicflow_commands_total", &[("command", command), ("result", result)]);
    e.into()
}

/// The current state of an instance as a view.
pub async fn current_view(state: &AppState, id: &str) -> Result<InstanceView, ApiError> {
    let (record, core) = state.runtime.load(id).await?;
    let program = state.runtime.program(&record.policy_name, Some(&record.policy_hash)).await?;
    Ok(view(&record, &program, &core, None))
}

/// The instance as it is now, as `principal` may read it: personal values redacted unless it is
/// of a bound office or oversight (R6.2).
pub async fn current_view_for(state: &AppState, id: &str, principal: &Principal) -> Result<InstanceView, ApiError> {
    let (record, mut core) = state.runtime.load(id).await?;
    let program = state.runtime.program(&record.policy_name, Some(&record.policy_hash)).await?;
    if super::personal::must_redact(&program, &core, principal) {
        civicflow_engine::core::personal::redact_state(&program, &mut core);
    }
    Ok(view(&record, &program, &core, None))
}

/// The version's hash for a `version` that is a hash or a label.
async fn resolve_version(state: &AppState, policy: &str, version: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(v) = version else { return Ok(None) };
    let versions = state.store.policy_versions(policy).await?;
    versions
        .iter()
        .rev()
        .find(|p| p.hash == v || p.version_label == v)
        .map(|p| Some(p.hash.clone()))
        .ok_or_else(|| ApiError::not_found("policy version", &format!("{policy}@{v}")))
}

fn read_params(
    program: &Program,
    given: &serde_json::Map<String, serde_json::Value>,
) -> Result<BTreeMap<String, Value>, ApiError> {
    let mut params = BTreeMap::new();
    for (name, json) in given {
        let param = program.policy.params.iter().find(|p| &p.id == name && !p.id.contains('/')).ok_or_else(|| {
            ApiError::from(Refusal::BadParam {
                param: name.clone(),
                problem: format!("policy `{}` has no such parameter", program.policy.name),
            })
        })?;
        let value = from_json(&param.ty, json)
            .map_err(|problem| ApiError::from(Refusal::BadParam { param: name.clone(), problem }))?;
        params.insert(name.clone(), value);
    }
    Ok(params)
}

fn choose_role(principal: &Principal, asked: Option<&str>, node: Option<&ir::Node>) -> Result<String, ApiError> {
    if let Some(role) = asked {
        return if principal.roles.iter().any(|r| r == role) {
            Ok(role.to_string())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "ROLE_NOT_HELD",
                format!("`{}` does not hold role `{role}`", principal.name),
            ))
        };
    }
    let named = node.and_then(|n| principal.roles.iter().find(|r| n.roles.contains(r)));
    named.or(principal.roles.first()).cloned().ok_or_else(|| ApiError::admin_required("acting"))
}

fn read_action(step: &str, node: Option<&ir::Node>, request: &ActRequest) -> Result<Action, ApiError> {
    let data = request.data.clone().unwrap_or(serde_json::Value::Null);
    // A text the action needs: from `data.<field>`, a plain string `data`, or the comment.
    let text = |field: &str| -> Option<String> {
        data.get(field)
            .and_then(|v| v.as_str())
            .or_else(|| data.as_str())
            .map(str::to_string)
            .or_else(|| request.comment.clone())
    };
    let need = |field: &str| -> Result<String, ApiError> {
        text(field)
            .ok_or_else(|| ApiError::invalid(format!("`{}` needs `data.{field}` (or a `comment`)", request.action)))
    };
    Ok(match request.action.as_str() {
        "submit_form" => Action::SubmitForm { data: read_form(step, node, &data)? },
        "complete" => Action::Complete { report: text("report").unwrap_or_default() },
        "approve" => Action::Approve { comment: request.comment.clone() },
        // An empty reason is the core's to refuse (R018).
        "reject" => Action::Reject { reason: text("reason").unwrap_or_default() },
        "file" => Action::File { comment: request.comment.clone() },
        "give_opinion" => Action::GiveOpinion { opinion: need("opinion")? },
        "raise_objection" => Action::RaiseObjection { objection: need("objection")? },
        "enter_vote" => {
            let counts: VoteCountsView = serde_json::from_value(data).map_err(|e| {
                ApiError::invalid(format!("`enter_vote` needs `data` = {{present, cast, invalid, tallies}}: {e}"))
            })?;
            Action::EnterVote { counts: counts.into() }
        }
        "return_to" => {
            let target = data
                .get("target")
                .and_then(|v| v.as_str())
                .ok_or_else(|| ApiError::invalid("`return_to` needs `data.target`, the step to return to"))?
                .to_string();
            Action::ReturnTo { target, reason: text("reason").unwrap_or_default() }
        }
        "withdraw" => Action::Withdraw,
        "delegate" => Action::Delegate { to: need("to")? },
        "urge" => Action::Urge { message: request.comment.clone().or_else(|| text("message")) },
        other => {
            return Err(ApiError::invalid(format!(
                "unknown action `{other}`; actions are submit_form, complete, approve, reject, file, give_opinion, \
                 enter_vote, raise_objection, return_to, withdraw, delegate, urge"
            )))
        }
    })
}

fn read_form(
    step: &str,
    node: Option<&ir::Node>,
    data: &serde_json::Value,
) -> Result<BTreeMap<String, Value>, ApiError> {
    let serde_json::Value::Object(fields) = data else {
        return Err(ApiError::invalid("`submit_form` needs `data`, an object of the form's fields"));
    };
    let Some(node) = node else {
        // Unknown step: the core refuses it (R004) with its own words.
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for (name, json) in fields {
        let field = node.form.iter().find(|f| &f.name == name).ok_or_else(|| {
            ApiError::from(Refusal::BadField {
                node: step.to_string(),
                field: name.clone(),
                problem: "the form has no such field".into(),
            })
        })?;
        let value = from_json(&field.ty, json).map_err(|problem| {
            ApiError::from(Refusal::BadField { node: step.to_string(), field: name.clone(), problem })
        })?;
        out.insert(name.clone(), value);
    }
    Ok(out)
}

fn check_id(id: &str) -> Result<String, ApiError> {
    super::instance_id::check(id)
}

fn new_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("no randomness for an id: {e}")))?;
    Ok(format!("i-{}", hex::encode(bytes)))
}

/// Does an instance have an open step for this office (role)?
async fn awaits_office(state: &AppState, record: &InstanceRecord, office: &str) -> Result<bool, ApiError> {
    let core = snapshot(record)?;
    let program = state.runtime.program(&record.policy_name, Some(&record.policy_hash)).await?;
    Ok(core.nodes.values().any(|n| {
        n.status == NodeStatus::Open && program.node(&n.def).is_some_and(|d| d.roles.iter().any(|r| r == office))
    }))
}

fn snapshot(record: &InstanceRecord) -> Result<CoreState, ApiError> {
    serde_json::from_value(record.snapshot.clone())
        .map_err(|e| ApiError::internal(format!("snapshot of `{}` is unreadable: {e}", record.id)))
}

fn summary(record: &InstanceRecord) -> Result<InstanceSummary, ApiError> {
    let core = snapshot(record)?;
    let open: Vec<(&String, &NodeState)> = core.nodes.iter().filter(|(_, n)| n.status == NodeStatus::Open).collect();
    Ok(InstanceSummary {
        id: record.id.clone(),
        policy: record.policy_name.clone(),
        policy_hash: record.policy_hash.clone(),
        status: record.status.clone(),
        version: record.version,
        created_at: record.created_at,
        updated_at: record.updated_at,
        open_steps: open.iter().map(|(k, _)| (*k).clone()).collect(),
        overdue_steps: open.iter().filter(|(_, n)| n.overdue).map(|(k, _)| (*k).clone()).collect(),
    })
}

/// A serde word (`open`, `approved`, `task` …) of a core or IR enum.
pub fn word<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

pub fn kind_word(kind: &NodeKind) -> String {
    match kind {
        NodeKind::Phase => "phase".into(),
        NodeKind::Call => "call".into(),
        NodeKind::Step(k) => word(k),
    }
}

fn json_map(values: &BTreeMap<String, Value>) -> serde_json::Map<String, serde_json::Value> {
    values.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()
}

/// The view of a state, steps in the policy's order.
pub fn view(
    record: &InstanceRecord,
    program: &Program,
    core: &CoreState,
    as_of: Option<DateTime<Utc>>,
) -> InstanceView {
    let mut by_def: BTreeMap<&str, Vec<(&String, &NodeState)>> = BTreeMap::new();
    for (key, n) in &core.nodes {
        by_def.entry(n.def.as_str()).or_default().push((key, n));
    }
    let mut steps = Vec::new();
    for def in &program.policy.nodes {
        for (key, n) in by_def.get(def.id.as_str()).map(Vec::as_slice).unwrap_or_default() {
            steps.push(step_view(key, def, n));
        }
    }
    InstanceView {
        id: record.id.clone(),
        policy: record.policy_name.clone(),
        policy_hash: record.policy_hash.clone(),
        status: word(&core.status),
        version: core.version,
        created_at: record.created_at,
        started_at: core.started_at,
        as_of,
        params: json_map(&core.params),
        values: json_map(&core.values),
        steps,
        cycle: core.cycle.number(),
        previous: core.cycle.previous.clone(),
        next_cycle_due: core
            .cycle
            .next
            .as_ref()
            .map(|n| n.due_at)
            .or_else(|| civicflow_engine::core::cycles::next_due_in(program, core).map(|(_, at)| at)),
        next_cycle: core.cycle.next.as_ref().map(|n| n.instance.clone()),
        next_cycle_awaiting: core.cycle.next.as_ref().filter(|n| !n.opened).and_then(|n| n.awaiting.clone()),
        next_cycle_refused: core.cycle.next.as_ref().and_then(|n| n.refused.clone()),
    }
}

fn step_view(key: &str, def: &ir::Node, n: &NodeState) -> StepView {
    let awaiting = if n.status == NodeStatus::Open && matches!(def.kind, NodeKind::Step(_)) {
        def.roles.iter().filter(|r| !n.acts.iter().any(|a| &a.actor.role == *r)).cloned().collect()
    } else {
        Vec::new()
    };
    StepView {
        id: key.to_string(),
        name: def.name.clone(),
        title: def.title.clone(),
        kind: kind_word(&def.kind),
        status: word(&n.status),
        outcome: n.outcome.as_ref().map(word),
        roles: def.roles.clone(),
        awaiting,
        opened_at: n.opened_at,
        closed_at: n.closed_at,
        window_opens: n.window.map(|w| w.0),
        window_closes: n.window.map(|w| w.1),
        window_awaiting_calendar: n.window_awaiting.map(|w| w.year),
        due_at: n.due_at,
        due_awaiting_calendar: awaiting_year(n),
        due_note: awaiting_year(n).map(awaiting_words),
        min_until: n.min_until,
        min_awaiting_calendar: n.min_awaiting.map(|w| w.year),
        overdue: n.overdue,
        escalated_to: n.escalated_to.clone(),
        reassigned_to: n.reassigned_to.clone(),
        round: n.round,
        acts: n
            .acts
            .iter()
            .map(|a| ActView {
                principal: a.actor.principal.clone(),
                office: a.actor.office.clone(),
                role: a.actor.role.clone(),
                action: a.action.clone(),
                at: a.at,
                text: a.text.clone(),
            })
            .collect(),
        form: n.form.as_ref().map(|f| serde_json::Value::Object(json_map(f))),
        vote: n.vote.as_ref().map(|v| VoteView {
            eligible: v.eligible,
            seats: v.seats,
            counts: VoteCountsView {
                present: v.counts.present,
                cast: v.counts.cast,
                invalid: v.counts.invalid,
                tallies: v
                    .counts
                    .tallies
                    .iter()
                    .map(|t| TallyView { candidate: t.candidate.clone(), votes: t.votes })
                    .collect(),
            },
            elected: v.elected.clone(),
        }),
    }
}

impl From<VoteCountsView> for VoteCounts {
    fn from(v: VoteCountsView) -> Self {
        VoteCounts {
            present: v.present,
            cast: v.cast,
            invalid: v.invalid,
            tallies: v.tallies.into_iter().map(|t| Tally { candidate: t.candidate, votes: t.votes }).collect(),
        }
    }
}

/// R0.2: the year a step's deadline waits for, if it does.
pub fn awaiting_year(n: &civicflow_engine::core::NodeState) -> Option<i32> {
    match n.due() {
        civicflow_engine::core::Due::AwaitingCalendar { year } => Some(year),
        _ => None,
    }
}

/// `awaiting the 2027 calendar` (the pages say 待2027年日历公布).
pub fn awaiting_words(year: i32) -> String {
    format!("awaiting the {year} calendar")
}
