//! Suspending and resuming an instance (挂起 / 激活, issue 11.3): `POST /v1/instances/{id}/suspend`
//! and `/resume`, each with a reason, by a role the policy declares `may suspend`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

use civicflow_engine::core::Actor;

use super::auth::{Caller, Principal};
use super::extract::{AppPath, Body, IdempotencyKey, InFlight};
use super::instances::{counted, respond, CommandResult};
use super::problem::{ApiError, Problem};
use super::AppState;

/// Why the instance is suspended or resumed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspensionRequest {
    /// The reason, recorded in the history (a court case, a higher body's instruction).
    pub reason: String,
    /// The role to act in, when the principal has several (else the first it holds that the
    /// policy declares `may suspend`).
    #[serde(default)]
    pub role: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/instances/{id}/suspend",
    tag = "instances",
    request_body = SuspensionRequest,
    params(
        ("id" = String, Path, description = "The instance to suspend"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe: the same key with the same body returns the first result"),
    ),
    responses(
        (status = 200, description = "Suspended (挂起): no step may be acted on and no deadline runs until resumed", body = CommandResult),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may not suspend (F052)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such instance", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already suspended (F050), or the instance is closed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No reason (F018)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn suspend(
    State(state): State<AppState>,
    Caller(principal): Caller,
    AppPath(id): AppPath<String>,
    key: IdempotencyKey,
    body: Body,
) -> Result<Response, ApiError> {
    suspend_or_resume(state, principal, id, key, body, false).await
}

#[utoipa::path(
    post,
    path = "/v1/instances/{id}/resume",
    tag = "instances",
    request_body = SuspensionRequest,
    params(
        ("id" = String, Path, description = "The instance to resume"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe: the same key with the same body returns the first result"),
    ),
    responses(
        (status = 200, description = "Resumed (激活): the `resumed` event lists each deadline moved later by the time suspended", body = CommandResult),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may not resume (F052)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such instance", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not suspended (F051), or the instance is closed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No reason (F018)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn resume(
    State(state): State<AppState>,
    Caller(principal): Caller,
    AppPath(id): AppPath<String>,
    key: IdempotencyKey,
    body: Body,
) -> Result<Response, ApiError> {
    suspend_or_resume(state, principal, id, key, body, true).await
}

async fn suspend_or_resume(
    state: AppState,
    principal: Principal,
    id: String,
    key: IdempotencyKey,
    body: Body,
    resume: bool,
) -> Result<Response, ApiError> {
    let request: SuspensionRequest = body.json()?;
    let _guard = InFlight::begin(&state.inflight, &principal.name, &key)?;
    let (record, _) = state.runtime.load(&id).await?;
    let program = state.runtime.program(&record.policy_name, Some(&record.policy_hash)).await?;
    // A role that may not is the core's to refuse (F052).
    let role = super::instances::role_with_power(
        &principal,
        request.role.as_deref(),
        &program,
        |r| r.may_suspend,
        "suspending",
    )?;
    let actor = Actor { principal: principal.name.clone(), office: principal.office.clone(), role };
    let command = if resume { "resume" } else { "suspend" };
    let outcome = state
        .runtime
        .suspend_or_resume(&id, &actor, resume, &request.reason, key.with(&body))
        .await
        .map_err(|e| counted(&state, command, e))?;
    respond(&state, command, StatusCode::OK, outcome).await
}
