//! Migration plans (issue 11.5), admin only: `POST /v1/migrations` computes and stores a plan
//! moving a policy's running instances from one version to another — nothing changes yet —;
//! `GET /v1/migrations/{id}` reads it again for review; `POST /v1/migrations/{id}/apply` applies
//! it, each instance in a commit of its own, and says which moved, which were moved already (an
//! application resumed), which were refused and why, and which no longer run on the old version.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use civicflow_engine::runtime::{MigrationPlan, MigrationReport, PlannedOutcome};

use super::auth::Caller;
use super::extract::{AppPath, Body};
use super::problem::{ApiError, Problem};
use super::AppState;

/// What to plan.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// The policy's name.
    pub policy: String,
    /// The version the running instances move from: its hash, a prefix of 8 or more digits, or
    /// its label (`2012.1`).
    pub from: String,
    /// The version they move to, named the same ways.
    pub to: String,
    /// Steps renamed between the versions: old id → new id (a renamed phase's children follow).
    #[serde(default)]
    pub renames: BTreeMap<String, String>,
}

/// A migration plan.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlanView {
    /// `mig-` and 16 hex digits: what `/apply` is called with.
    pub id: String,
    pub policy: String,
    pub from: String,
    pub from_label: String,
    pub to: String,
    pub to_label: String,
    pub renames: BTreeMap<String, String>,
    /// Between the versions, instances aside: every id renamed (old → new), removed, added,
    /// and the kinds that change.
    pub renamed: BTreeMap<String, String>,
    pub removed: Vec<String>,
    pub added: Vec<String>,
    pub changed_kind: BTreeMap<String, String>,
    /// Each running instance on `from` when planned.
    pub instances: Vec<PlannedInstanceView>,
    /// How many move, how many are refused.
    pub moves: usize,
    pub refused: usize,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// The plan as a reviewer reads it.
    pub text: String,
}

/// One instance of a plan.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlannedInstanceView {
    pub id: String,
    /// Its version when planned.
    pub version: u64,
    /// `migrates` or `refused`.
    pub outcome: String,
    /// Its steps renamed (`[old, new]`), removed, added, and those that open at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renamed: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opens: Vec<String>,
    /// Refused: the code (F061 …) and the words, naming the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What applying a plan did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReportView {
    pub plan: String,
    pub migrated: Vec<String>,
    pub already: Vec<String>,
    pub refused: Vec<RefusedView>,
    pub gone: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RefusedView {
    pub id: String,
    pub code: String,
    pub reason: String,
}

impl From<MigrationPlan> for PlanView {
    fn from(p: MigrationPlan) -> Self {
        let (moves, refused) = p.counts();
        let text = p.text();
        let instances = p
            .instances
            .into_iter()
            .map(|i| match i.outcome {
                PlannedOutcome::Migrates { renamed, removed, added, opens } => PlannedInstanceView {
                    id: i.id,
                    version: i.version,
                    outcome: "migrates".into(),
                    renamed,
                    removed,
                    added,
                    opens,
                    code: None,
                    reason: None,
                },
                PlannedOutcome::Refused { code, reason } => PlannedInstanceView {
                    id: i.id,
                    version: i.version,
                    outcome: "refused".into(),
                    renamed: Vec::new(),
                    removed: Vec::new(),
                    added: Vec::new(),
                    opens: Vec::new(),
                    code: Some(code),
                    reason: Some(reason),
                },
            })
            .collect();
        PlanView {
            id: p.id,
            policy: p.policy,
            from: p.from,
            from_label: p.from_label,
            to: p.to,
            to_label: p.to_label,
            renames: p.renames,
            renamed: p.map.renamed,
            removed: p.map.removed,
            added: p.map.added,
            changed_kind: p.map.changed_kind,
            instances,
            moves,
            refused,
            created_at: p.created_at,
            created_by: p.created_by,
            text,
        }
    }
}

impl From<MigrationReport> for ReportView {
    fn from(r: MigrationReport) -> Self {
        ReportView {
            plan: r.plan,
            migrated: r.migrated,
            already: r.already,
            refused: r.refused.into_iter().map(|x| RefusedView { id: x.id, code: x.code, reason: x.reason }).collect(),
            gone: r.gone,
        }
    }
}

#[utoipa::path(
    post,
    path = "/v1/migrations",
    tag = "migrations",
    request_body = PlanRequest,
    responses(
        (status = 201, description = "Planned and stored; nothing moved yet. Each running instance on `from` is listed as it maps or with the refusal that names its step (F061)", body = PlanView),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the `admin` role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such policy or version", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The renames do not fit the versions, or the versions are the same (F061)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a plan request", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn plan(State(state): State<AppState>, Caller(principal): Caller, body: Body) -> Result<Response, ApiError> {
    principal.require_admin("planning a migration")?;
    let request: PlanRequest = body.json()?;
    let plan = state
        .runtime
        .plan_migration(&request.policy, &request.from, &request.to, request.renames, &principal.name, |_, _| {})
        .await?;
    Ok((StatusCode::CREATED, Json(PlanView::from(plan))).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/migrations/{id}",
    tag = "migrations",
    params(("id" = String, Path, description = "The plan's id")),
    responses(
        (status = 200, description = "The plan, as it was made", body = PlanView),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the `admin` role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_plan(
    State(state): State<AppState>,
    Caller(principal): Caller,
    AppPath(id): AppPath<String>,
) -> Result<Json<PlanView>, ApiError> {
    principal.require_admin("reading a migration plan")?;
    Ok(Json(state.runtime.migration_plan(&id).await?.into()))
}

#[utoipa::path(
    post,
    path = "/v1/migrations/{id}/apply",
    tag = "migrations",
    params(("id" = String, Path, description = "The plan's id")),
    responses(
        (status = 200, description = "Applied: each instance the plan moves, in a commit of its own, decided again as it is now. Applying again resumes: what moved already is listed as `already`", body = ReportView),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the `admin` role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn apply(
    State(state): State<AppState>,
    Caller(principal): Caller,
    AppPath(id): AppPath<String>,
) -> Result<Json<ReportView>, ApiError> {
    principal.require_admin("applying a migration plan")?;
    let report = state.runtime.apply_migration(&id, &principal.name, |_, _| {}).await?;
    state.metrics.inc("civicflow_commands_total", &[("command", "migrate"), ("result", "ok")]);
    Ok(Json(report.into()))
}
