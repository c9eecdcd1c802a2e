//! Correcting start parameters of a running instance (更正, issue 11.4):
//! `POST /v1/instances/{id}/corrections`, with a reason, by a role the policy declares
//! `may correct`. The core computes again what the parameters computed and refuses a correction
//! that would make a completed step invalid (F060), naming the step and the rule.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

use civicflow_engine::core::Actor;

use super::auth::Caller;
use super::extract::{AppPath, Body, IdempotencyKey, InFlight};
use super::instances::{counted, read_params, respond, role_with_power, CommandResult};
use super::problem::{ApiError, Problem};
use super::AppState;

/// The parameters to correct and why.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectionRequest {
    /// The corrected parameters as plain JSON, as at the start (`{"户数": 3000}`); the others
    /// keep their values.
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The reason, recorded in the history (户数录入有误 …).
    pub reason: String,
    /// The role to act in, when the principal has several (else the first it holds that the
    /// policy declares `may correct`).
    #[serde(default)]
    pub role: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/instances/{id}/corrections",
    tag = "instances",
    request_body = CorrectionRequest,
    params(
        ("id" = String, Path, description = "The instance to correct"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe: the same key with the same body returns the first result"),
    ),
    responses(
        (status = 200, description = "Corrected (更正): the `corrected` event lists each parameter from and to, the values computed again and the open steps whose window, deadline or minimum duration moved", body = CommandResult),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may not correct (F059), or the principal does not hold the role named", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such instance", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The instance is closed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No reason (F018), a parameter unknown, of the wrong type, out of range or unchanged (F011), or a completed step would be made invalid (F060: the step and the rule)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn correct(
    State(state): State<AppState>,
    Caller(principal): Caller,
    AppPath(id): AppPath<String>,
    key: IdempotencyKey,
    body: Body,
) -> Result<Response, ApiError> {
    let request: CorrectionRequest = body.json()?;
    let _guard = InFlight::begin(&state.inflight, &principal.name, &key)?;
    let (record, _) = state.runtime.load(&id).await?;
    let program = state.runtime.program(&record.policy_name, Some(&record.policy_hash)).await?;
    let params = read_params(&program, &request.params)?;
    // A role that may not is the core's to refuse (F059).
    let role = role_with_power(&principal, request.role.as_deref(), &program, |r| r.may_correct, "correcting")?;
    let actor = Actor { principal: principal.name.clone(), office: principal.office.clone(), role };
    let outcome = state
        .runtime
        .correct(&id, &actor, params, &request.reason, key.with(&body))
        .await
        .map_err(|e| counted(&state, "correct", e))?;
    respond(&state, "correct", StatusCode::OK, outcome).await
}
