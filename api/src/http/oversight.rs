//! Issue 12.6: `GET /v1/oversight/lateness` (JSON) and `GET /v1/oversight/lateness.csv`: which
//! offices were late, on which procedures, how often, week by week, for a period of days (Beijing
//! time), read from the lateness index (`crate::oversight`).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::oversight::{self, Lateness};

use super::auth::Caller;
use super::extract::AppQuery;
use super::problem::{ApiError, Problem};
use super::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    /// The first day, `YYYY-MM-DD` in Beijing time (default: 89 days before `to`).
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<NaiveDate>,
    /// The last day, inclusive (default: today).
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<NaiveDate>,
}

async fn lateness_of(
    state: &AppState,
    principal: &super::auth::Principal,
    q: &PeriodQuery,
) -> Result<Lateness, ApiError> {
    let (from, to) = oversight::period(q.from, q.to, state.runtime.clock().now())?;
    oversight::report(state, principal, from, to).await
}

#[utoipa::path(
    get,
    path = "/v1/oversight/lateness",
    tag = "oversight",
    params(PeriodQuery),
    responses(
        (status = 200, description = "Breaches of the period by office, policy, both, and week, and each breach", body = Lateness),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither an oversight role of a policy nor admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`from` after `to`, or a period over ten years", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn lateness(
    State(state): State<AppState>,
    Caller(principal): Caller,
    AppQuery(q): AppQuery<PeriodQuery>,
) -> Result<Json<Lateness>, ApiError> {
    lateness_of(&state, &principal, &q).await.map(Json)
}

#[utoipa::path(
    get,
    path = "/v1/oversight/lateness.csv",
    tag = "oversight",
    params(PeriodQuery),
    responses(
        (status = 200, description = "Each breach of the period: late_at, due_at, policy, instance, step, role, office", content_type = "text/csv", body = String),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither an oversight role of a policy nor admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`from` after `to`, or a period over ten years", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn lateness_csv(
    State(state): State<AppState>,
    Caller(principal): Caller,
    AppQuery(q): AppQuery<PeriodQuery>,
) -> Result<Response, ApiError> {
    let report = lateness_of(&state, &principal, &q).await?;
    let name = format!("attachment; filename=\"lateness-{}-{}.csv\"", report.from, report.to);
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, name)],
        oversight::csv(&report),
    )
        .into_response())
}
