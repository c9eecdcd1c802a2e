//! An instance's deadlines as an iCalendar feed (RFC 5545): one VEVENT per step with a deadline,
//! its start the deadline in UTC. Offices subscribe to it in their calendar programs.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::auth::Caller;
use super::extract::AppPath;
use super::instances::{current_view, InstanceView};
use super::problem::{ApiError, Problem};
use super::AppState;

#[utoipa::path(
    get,
    path = "/v1/instances/{id}/calendar.ics",
    tag = "instances",
    params(("id" = String, Path, description = "The instance id")),
    responses(
        (status = 200, description = "The deadlines as VEVENTs (UID, DTSTAMP, DTSTART in UTC, SUMMARY)", content_type = "text/calendar", body = String),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such instance", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn calendar(
    State(state): State<AppState>,
    Caller(_p): Caller,
    AppPath(id): AppPath<String>,
) -> Result<Response, ApiError> {
    let view = current_view(&state, &id).await?;
    let text = ics(&view, state.runtime.clock().now());
    Ok(([(header::CONTENT_TYPE, "text/calendar; charset=utf-8")], text).into_response())
}

/// The feed of an instance's deadlines, stamped `now`.
pub fn ics(view: &InstanceView, now: DateTime<Utc>) -> String {
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".to_string(),
        "PRODID:-//civicflow//deadlines//ZH".to_string(),
        "CALSCALE:GREGORIAN".to_string(),
        format!("X-WR-CALNAME:{}", escape(&format!("{} {}", view.policy, view.id))),
    ];
    for step in &view.steps {
        let Some(due) = step.due_at else { continue };
        let title = step.title.as_deref().unwrap_or(&step.name);
        let mut state = step.status.clone();
        if step.overdue {
            state.push_str(", overdue");
        }
        lines.extend([
            "BEGIN:VEVENT".to_string(),
            format!("UID:{}", escape(&format!("{}/{}/{}@civicflow", view.id, step.id, step.round))),
            format!("DTSTAMP:{}", utc(now)),
            format!("DTSTART:{}", utc(due)),
            format!("SUMMARY:{}", escape(&format!("截止 {title}"))),
            format!(
                "DESCRIPTION:{}",
                escape(&format!("{} — {} ({state}); {}", view.policy, step.id, step.roles.join(", ")))
            ),
            "END:VEVENT".to_string(),
        ]);
    }
    lines.push("END:VCALENDAR".to_string());
    lines.iter().map(|l| fold(l)).collect::<Vec<_>>().join("")
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// TEXT escaping (RFC 5545 §3.3.11).
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace(';', "\\;").replace(',', "\\,").replace('\n', "\\n")
}

/// A content line folded at 75 octets (never inside a UTF-8 character), ending in CRLF.
fn fold(line: &str) -> String {
    let mut out = String::new();
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fold_at_75_octets_between_characters() {
        let line = format!("SUMMARY:{}", "截止".repeat(30));
        let folded = fold(&line);
        for l in folded.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(l.len() <= 75, "{} octets: {l}", l.len());
        }
        assert_eq!(folded.replace("\r\n ", "").trim_end(), line);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
    }
}
