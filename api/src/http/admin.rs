//! Administration: the simulated clock (rehearsals, demos, tests). Moving it fires the timers
//! that became due, in order, before answering.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::extract::{remember, replay, Body, IdempotencyKey, InFlight};
use super::problem::{ApiError, Problem};
use super::AppState;

/// Move the simulated clock.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvanceClock {
    /// An RFC 3339 instant, not before the clock's current time (`2012-04-02T09:00:00+08:00`).
    #[schema(format = DateTime)]
    pub advance_to: String,
}

/// The clock.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClockView {
    pub now: DateTime<Utc>,
    /// Whether the server runs on a simulated clock (`--simulated-clock`).
    pub simulated: bool,
    /// Timers fired by this move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/clock",
    tag = "admin",
    responses(
        (status = 200, description = "The server's time", body = ClockView),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn clock(State(state): State<AppState>, Caller(_p): Caller) -> Json<ClockView> {
    Json(ClockView { now: state.runtime.clock().now(), simulated: state.simulated.is_some(), fired: None })
}

#[utoipa::path(
    post,
    path = "/v1/admin/clock",
    tag = "admin",
    request_body = AdvanceClock,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe: the same key with the same body returns the first result")),
    responses(
        (status = 200, description = "Moved; due timers fired", body = ClockView),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the `admin` role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The server runs on the system clock (`CLOCK_NOT_SIMULATED`), or the same key is in flight", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an instant, or before the clock's time (`CLOCK_BACKWARDS`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn advance_clock(
    State(state): State<AppState>,
    Caller(principal): Caller,
    key: IdempotencyKey,
    body: Body,
) -> Result<Response, ApiError> {
    principal.require_admin("moving the clock")?;
    let request: AdvanceClock = body.json()?;
    let Some(clock) = &state.simulated else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            crate::http::codes::ProblemCode::ClockNotSimulated.as_str(),
            "the server runs on the system clock; start it with `--simulated-clock` to move time",
        ));
    };
    let _guard = InFlight::begin(&state.inflight, &principal.name, &key)?;
    if let Some(done) = replay(&state, &principal.name, &key, &body).await? {
        return Ok(done);
    }
    let to = DateTime::parse_from_rfc3339(&request.advance_to)
        .map_err(|_| {
            ApiError::invalid(format!("`advance_to` must be an RFC 3339 instant, got `{}`", request.advance_to))
        })?
        .with_timezone(&Utc);
    clock.advance_to(to).map_err(|m| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, crate::http::codes::ProblemCode::ClockBackwards.as_str(), m)
    })?;
    // Issue 9.6: the other nodes' clocks follow (within their timer interval).
    state.store.advance_simulated_clock(to).await?;
    let fired = state.runtime.fire_all_due().await?;
    state.metrics.inc("civicflow_commands_total", &[("command", "advance_clock"), ("result", "ok")]);
    let view = ClockView { now: to, simulated: true, fired: Some(fired) };
    let json = serde_json::to_value(&view).map_err(|e| ApiError::internal(e.to_string()))?;
    remember(&state, &principal.name, &key, &body, StatusCode::OK, &json).await?;
    Ok(Json(json).into_response())
}
