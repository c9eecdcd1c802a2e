//! R0.2: the working-day calendar's years — which are covered (`GET /v1/calendars`), and adding
//! one while the server runs (`POST /v1/admin/calendars`, admin only).
//!
//! The body of a POST is the year's file in the bundled format (`engine/calendars/cn/YYYY.json`);
//! its first notice must give its title and date (`source.notices[0].title`, `.date`), which are
//! recorded in the history of every instance the year affects. Adding a year stores it (a
//! restart keeps it), swaps it into the running calendar, and computes every deadline waiting
//! for it, creating its timers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use civicflow_engine::core::Actor;

use super::auth::{Caller, ADMIN_ROLE};
use super::extract::{remember, replay, Body, IdempotencyKey, InFlight};
use super::problem::{ApiError, Problem};
use super::AppState;

/// A notice a year transcribes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NoticeView {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One covered year.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CalendarYearView {
    pub year: i32,
    /// `bundled calendars/cn/YYYY.json`, a file path, or `stored calendar year YYYY` / `added by …`.
    pub origin: String,
    pub notices: Vec<NoticeView>,
    /// The registry package the entries were generated from (`chinese-days 1.5.7 (npm, MIT)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// Holidays and make-up working days listed.
    pub entries: usize,
}

/// The calendar's years.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CalendarsView {
    /// Ascending.
    pub years: Vec<CalendarYearView>,
}

/// What adding a year did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CalendarAddedView {
    pub year: i32,
    pub notice: NoticeView,
    /// The running instances whose waiting deadlines were computed.
    pub instances: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/v1/calendars",
    tag = "calendars",
    responses(
        (status = 200, description = "The working-day calendar's years, with their notices", body = CalendarsView),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_calendars(State(state): State<AppState>, Caller(_p): Caller) -> Json<CalendarsView> {
    let calendar = state.runtime.calendar();
    let years = calendar
        .covered_years()
        .into_iter()
        .filter_map(|y| calendar.year(y))
        .map(|y| CalendarYearView {
            year: y.year(),
            origin: y.origin().to_string(),
            notices: y
                .source()
                .notices
                .iter()
                .map(|n| NoticeView {
                    title: n.title.clone(),
                    date: n.date,
                    document_number: n.document_number.clone(),
                    url: n.url.clone(),
                })
                .collect(),
            package: y
                .source()
                .package
                .as_ref()
                .map(|p| format!("{} {} ({}, {})", p.name, p.version, p.registry, p.license)),
            entries: y.entries().count(),
        })
        .collect();
    Json(CalendarsView { years })
}

#[utoipa::path(
    post,
    path = "/v1/admin/calendars",
    tag = "calendars",
    request_body(content = Object, description = "The year's file (format of engine/calendars/cn/YYYY.json); source.notices[0] needs `title` and `date`"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe: the same key with the same body returns the first result")),
    responses(
        (status = 200, description = "Added; waiting deadlines computed", body = CalendarAddedView),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the `admin` role", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a calendar year (`CAL003`, `CAL004`), or the notice's title or date missing (`CAL006`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn add_calendar(
    State(state): State<AppState>,
    Caller(principal): Caller,
    key: IdempotencyKey,
    body: Body,
) -> Result<Response, ApiError> {
    principal.require_admin("adding a calendar year")?;
    let _guard = InFlight::begin(&state.inflight, &principal.name, &key)?;
    if let Some(done) = replay(&state, &principal.name, &key, &body).await? {
        return Ok(done);
    }
    let text = body.text()?;
    let actor = Actor { principal: principal.name.clone(), office: principal.office.clone(), role: ADMIN_ROLE.into() };
    let added = state.runtime.add_calendar_year(text, "the request body", &actor).await?;
    state.metrics.inc("civicflow_commands_total", &[("command", "add_calendar"), ("result", "ok")]);
    let view = CalendarAddedView {
        year: added.year,
        notice: NoticeView {
            title: added.notice.title,
            date: Some(added.notice.date),
            document_number: None,
            url: None,
        },
        instances: added.instances,
    };
    let json = serde_json::to_value(&view).map_err(|e| ApiError::internal(e.to_string()))?;
    remember(&state, &principal.name, &key, &body, StatusCode::OK, &json).await?;
    Ok(Json(json).into_response())
}
