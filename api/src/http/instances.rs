//! Instances: start, list, read (now or `as_of`), act on a step.
//!
//! The principal's role is chosen here: the one the request names (it must hold it), else the
//! first of its roles that the step names in `by`, else its first role — and then the core
//! refuses with F006 (403), recording nothing. Parameters and form data arrive as plain JSON and
//! are read with the policy's types (`civicflow_dsl::value::from_json`); what does not fit is
//! refused with the core's own codes (F011, F012).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use civicflow_dsl::ir;
use civicflow_dsl::value::{from_json, Value};
use civicflow_engine::core::{
    Action, Actor, NodeState, NodeStatus, Program, Refusal, RefusalClass, State as CoreState,
};
use civicflow_engine::runtime::{Outcome, RuntimeError};
use civicflow_engine::store::{InstanceFilter, InstanceRecord, MAX_PAGE_SIZE};

use super::auth::{Caller, Principal};
use super::extract::{replayed, AppPath, AppQuery, Body, IdempotencyKey, InFlight};
use super::history::EventView;
use super::problem::{ApiError, Problem};
use super::AppState;

pub use super::views::{
    awaiting_words, awaiting_year, kind_word, view, word, ActView, InstanceView, StepView, TallyView, VoteCountsView,
    VoteView,
};

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
    /// An id of the caller's choosing (1 to 64 letters, Chinese included, and digits, with `-`, `_`, `.` after the first); generated if absent: `i-`, the start time in milliseconds (12 hex digits) and 16 random hex digits, so ids sort by start.
    #[serde(default)]
    pub id: Option<String>,
}

/// Act on a step.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActRequest {
    /// `submit_form`, `complete`, `approve`, `reject`, `file`, `give_opinion`, `enter_vote`,
    /// `raise_objection`, `return_to`, `withdraw`, `delegate`, `urge`, `extend`, `transfer`,
    /// `add_approver`, `remove_approver`, `copy_to`, `mark_read`, `approve_extension` or
    /// `reject_extension`.
    pub action: String,
    /// What the action carries: `submit_form` the form's fields; `enter_vote`
    /// `{present, cast, invalid, tallies: [{candidate, votes}]}`; `return_to` `{target, reason}`;
    /// `delegate` `{to}`; `complete` `{report}`; `reject` `{reason}`; `give_opinion`
    /// `{opinion}`; `raise_objection` `{objection}`; `extend` `{amount, reason}` (延期: `amount`
    /// in the unit of the step's `extend … max`, e.g. working days; where the step says `approved
    /// by`, it is asked for, and `approve_extension` (a `comment`) or `reject_extension`
    /// `{reason}` by that role decides it); `transfer` `{to, reason}`
    /// (转办: `to` the office to hand the step to); `add_approver` / `remove_approver`
    /// `{role, reason}` (加签 / 减签); `copy_to` `{to, message}` (抄送: `to` the office to copy the
    /// step to for information); `mark_read` nothing (已阅: the caller's office read its copy) (a
    /// text may also come as `comment`).
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
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only instances of this policy.
    pub policy: Option<String>,
    /// Only instances with this status (`running`, `completed`, `rejected`, `cancelled`).
    pub status: Option<String>,
    /// Only instances with (`true`) or without (`false`) an open step past its deadline.
    pub overdue: Option<bool>,
    /// Only instances with an open step this role acts on (the role a step is reassigned to
    /// replaces its `by`).
    pub office: Option<String>,
    /// The page, from 1 (to 2^31 − 1).
    #[param(minimum = 1, maximum = 2147483647)]
    pub page: Option<u32>,
    /// Instances per page, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
}

/// The instant to read the state at.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AsOfQuery {
    /// An RFC 3339 instant (`2012-04-01T09:00:00+08:00`): the state replayed from the events up to it.
    #[param(format = DateTime)]
    pub as_of: Option<String>,
}

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
        (status = 422, description = "Parameters break a rule (F011), or the key was used for another request", body = Problem, content_type = "application/problem+json"),
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
                crate::http::codes::ProblemCode::NotARoleOfPolicy.as_str(),
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
    if page == 0 || page > i32::MAX as u32 || page_size == 0 || page_size > MAX_PAGE_SIZE {
        return Err(ApiError::invalid(format!(
            "pages count from 1 to {}; a page has 1 to {MAX_PAGE_SIZE} instances",
            i32::MAX
        )));
    }
    // Overdue and office are read from the store's open-step table (issue 10.6).
    let filter = InstanceFilter {
        policy: q.policy.clone(),
        status: q.status.clone(),
        overdue: q.overdue,
        awaiting: q.office.as_deref().map(civicflow_engine::core::Reader::awaiting_keys),
        page,
        page_size,
    };
    let found = state.store.list_instances(&filter).await?;
    let items = found.items.iter().map(summary).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(InstancePage { items, total: found.total, page, page_size }))
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
                    crate::http::codes::ProblemCode::NotFound.as_str(),
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
        (status = 403, description = "The role may not act on this step (F006), or the principal does not hold the role named", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such instance", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The step is not open (F005), outside its window (F008, F009), not this role's turn …: the problem carries the current `state`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The data breaks a rule: the rule's message and code (F012 field, F013 form rule, F014 quorum …), or the key was used for another request", body = Problem, content_type = "application/problem+json"),
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
    // Loaded once (from the runtime's instance cache when it holds it): read here to know the
    // step's form and roles, then decided on by the runtime.
    let mut copy = state.runtime.load_for_command(&id).await?;
    if !copy.1.nodes.contains_key(&step) {
        // A step the cached copy does not know may have been opened by another node since.
        copy = std::sync::Arc::new(state.runtime.load(&id).await?);
    }
    let (record, core) = (&copy.0, &copy.1);
    let program = state.runtime.program(&record.policy_name, Some(&record.policy_hash)).await?;
    let node = core.nodes.get(&step).and_then(|n| program.node(&n.def));
    let role = choose_role(&principal, request.role.as_deref(), node)?;
    let action = read_action(&step, node, &request)?;
    let actor = Actor { principal: principal.name.clone(), office: principal.office.clone(), role };
    let acted = state.runtime.act_loaded(copy, &actor, &step, action, request.comment.clone(), key.with(&body));
    match acted.await {
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
        (status = 403, description = "The role may not start the next cycle (F006)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such instance", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No next cycle is waiting to be started (F042)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A parameter is missing, carried over, or breaks a rule (F011)", body = Problem, content_type = "application/problem+json"),
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
pub(super) async fn respond(
    state: &AppState,
    command: &str,
    status: StatusCode,
    mut outcome: Outcome,
) -> Result<Response, ApiError> {
    let result = if outcome.replayed { "replayed" } else { "ok" };
    state.metrics.inc("civicflow_commands_total", &[("command", command), ("result", result)]);
    // The events as just committed; a replay reads them back by their seqs.
    let recorded = std::mem::take(&mut outcome.recorded);
    let events = match (outcome.seqs.first(), outcome.seqs.len()) {
        _ if !recorded.is_empty() && recorded.len() == outcome.seqs.len() => recorded,
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
pub(super) fn counted(state: &AppState, command: &str, e: RuntimeError) -> ApiError {
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

pub(crate) fn read_params(
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

/// The role an instance-level command (挂起, 更正 …) is made in: the one the request names (the
/// principal must hold it), else the first the principal holds that the policy grants the power
/// (`grants`), else its first role — the core then refuses a role without the power, in the
/// rule's words.
pub(crate) fn role_with_power(
    principal: &Principal,
    asked: Option<&str>,
    program: &Program,
    grants: impl Fn(&civicflow_dsl::ir::Role) -> bool,
    what: &str,
) -> Result<String, ApiError> {
    if asked.is_some() {
        return choose_role(principal, asked, None);
    }
    principal
        .roles
        .iter()
        .find(|r| program.policy.roles.iter().any(|p| grants(p) && p.name == **r))
        .or(principal.roles.first())
        .cloned()
        .ok_or_else(|| ApiError::admin_required(what))
}

pub(crate) fn choose_role(
    principal: &Principal,
    asked: Option<&str>,
    node: Option<&ir::Node>,
) -> Result<String, ApiError> {
    if let Some(role) = asked {
        return if principal.roles.iter().any(|r| r == role) {
            Ok(role.to_string())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                crate::http::codes::ProblemCode::RoleNotHeld.as_str(),
                format!("`{}` does not hold role `{role}`", principal.name),
            ))
        };
    }
    let named = node.and_then(|n| principal.roles.iter().find(|r| n.roles.contains(r)));
    named.or(principal.roles.first()).cloned().ok_or_else(|| ApiError::admin_required("acting"))
}

/// The core action a request names, with its data read against the step's form (pure: the fuzz
/// target `fuzz/fuzz_targets/action.rs` feeds it arbitrary bodies).
pub fn read_action(step: &str, node: Option<&ir::Node>, request: &ActRequest) -> Result<Action, ApiError> {
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
        // An empty reason is the core's to refuse (F018).
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
        "transfer" => Action::Transfer { to: need("to")?, reason: text("reason").unwrap_or_default() },
        "add_approver" => Action::AddApprover { role: need("role")?, reason: text("reason").unwrap_or_default() },
        "remove_approver" => Action::RemoveApprover { role: need("role")?, reason: text("reason").unwrap_or_default() },
        "approve_extension" => Action::ApproveExtension { comment: request.comment.clone() },
        // An empty reason is the core's to refuse (F018).
        "reject_extension" => Action::RejectExtension { reason: text("reason").unwrap_or_default() },
        "copy_to" => Action::CopyTo {
            to: data
                .get("to")
                .and_then(|v| v.as_str())
                .ok_or_else(|| ApiError::invalid("`copy_to` needs `data.to`, the office to copy the step to"))?
                .to_string(),
            message: data
                .get("message")
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .or_else(|| request.comment.clone()),
        },
        "mark_read" => Action::MarkRead,
        "extend" => {
            let amount =
                data.get("amount").and_then(serde_json::Value::as_u64).and_then(|n| u32::try_from(n).ok()).ok_or_else(
                    || ApiError::invalid("`extend` needs `data.amount`, a whole number of the step's unit"),
                )?;
            // An empty reason is the core's to refuse (F018).
            Action::Extend { amount, reason: text("reason").unwrap_or_default() }
        }
        other => {
            return Err(ApiError::invalid(format!(
                "unknown action `{other}`; actions are submit_form, complete, approve, reject, file, give_opinion, \
                 enter_vote, raise_objection, return_to, withdraw, delegate, urge, extend, transfer, add_approver, \
                 remove_approver, copy_to, mark_read, approve_extension, reject_extension"
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
        // Unknown step: the core refuses it (F004) with its own words.
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

/// A new instance's id: `i-`, the milliseconds since 1970 (12 hex digits), then 8 random bytes.
/// Time first (issue 10): the store keeps an instance's rows — its record, events, timers, open
/// steps — in the order of its id, so the instances started together share pages, and a batch
/// of their commits writes a few pages instead of one (4 KiB each) per instance.
fn new_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("no randomness for an id: {e}")))?;
    Ok(time_ordered_id(chrono::Utc::now(), bytes))
}

fn time_ordered_id(now: chrono::DateTime<chrono::Utc>, random: [u8; 8]) -> String {
    let millis = u64::try_from(now.timestamp_millis()).unwrap_or(0) & 0xffff_ffff_ffff;
    format!("i-{millis:012x}{}", hex::encode(random))
}

fn snapshot(record: &InstanceRecord) -> Result<CoreState, ApiError> {
    CoreState::deserialize(&record.snapshot)
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

#[cfg(test)]
mod tests {
    use super::time_ordered_id;
    use chrono::{TimeZone, Utc};

    /// Issue 10: a server-chosen id starts with its time, so ids sort in the order instances
    /// were started, and it is a valid id.
    #[test]
    fn new_ids_start_with_their_time_and_sort_by_it() {
        let at = Utc.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap();
        let id = time_ordered_id(at, [0xab; 8]);
        assert_eq!(id, "i-01a23e59c400abababababababab");
        assert_eq!(super::super::instance_id::problem(&id), None);
        let later = time_ordered_id(at + chrono::Duration::milliseconds(1), [0x00; 8]);
        let much_later = time_ordered_id(Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap(), [0x00; 8]);
        let mut ids = vec![much_later.clone(), later.clone(), id.clone()];
        ids.sort();
        assert_eq!(ids, [id, later, much_later]);
    }
}
