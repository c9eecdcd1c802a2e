//! Issue 12.6: the oversight page — which offices were late, on which procedures, how often, week
//! by week — for a period chosen on the page, as SVG charts (no JavaScript) and a table, with the
//! breaches as CSV. From `crate::oversight`, for a policy's oversight roles and admins.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::json;

use crate::oversight::{self, Lateness};

use super::{Pages, Session};

#[derive(Deserialize)]
pub struct PeriodForm {
    pub from: Option<String>,
    pub to: Option<String>,
}

fn day(text: Option<&str>, name: &str) -> Result<Option<NaiveDate>, crate::http::problem::ApiError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| crate::http::problem::ApiError::invalid(format!("`{name}` is a day, YYYY-MM-DD, not `{t}`"))),
    }
}

async fn load(pages: &Pages, headers: &HeaderMap, q: &PeriodForm) -> Result<(Session, Lateness), Response> {
    let session = pages.require(headers).await?;
    let app = &pages.app;
    let report = async {
        let (from, to) =
            oversight::period(day(q.from.as_deref(), "from")?, day(q.to.as_deref(), "to")?, app.runtime.clock().now())?;
        oversight::report(app, &session.principal, from, to).await
    }
    .await
    .map_err(|e| pages.api_error(headers, e))?;
    Ok((session, report))
}

pub async fn page(State(pages): State<Pages>, headers: HeaderMap, Query(q): Query<PeriodForm>) -> Response {
    let (session, report) = match load(&pages, &headers, &q).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let period = format!("from={}&to={}", report.from, report.to);
    let page = json!({
        "from": report.from.to_string(),
        "to": report.to.to_string(),
        "total": report.total,
        "truncated": report.truncated,
        "offices_svg": oversight::bars_svg("by-office", &report.by_office),
        "policies_svg": oversight::bars_svg("by-policy", &report.by_policy),
        "weeks_svg": oversight::weeks_svg("by-week", &report.by_week),
        "pairs": report.by_office_and_policy,
        "csv_href": format!("/oversight.csv?{period}"),
    });
    pages.render(&headers, "oversight", Some(&session), page)
}

pub async fn csv(State(pages): State<Pages>, headers: HeaderMap, Query(q): Query<PeriodForm>) -> Response {
    let report = match load(&pages, &headers, &q).await {
        Ok((_, r)) => r,
        Err(r) => return r,
    };
    let mut response = oversight::csv(&report).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(v) =
        HeaderValue::from_str(&format!("attachment; filename=\"lateness-{}-{}.csv\"", report.from, report.to))
    {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    response
}
