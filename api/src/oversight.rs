//! Issue 12.6: what oversight staff (纪委, 议事监督委员会) see of lateness — which offices were
//! late, on which procedures, how often, over time — for a chosen period, from the lateness index
//! the store keeps at commit (`late_steps`), never by replaying histories. Shared by
//! `GET /v1/oversight/lateness` and the `/oversight` page (with its SVG charts and CSV).
//!
//! A principal sees the breaches of the policies in which it holds an `oversight` role; an admin
//! sees all.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use civicflow_engine::store::LateRecord;

use crate::http::auth::Principal;
use crate::http::codes::ProblemCode;
use crate::http::problem::ApiError;
use crate::http::AppState;

/// The most breaches one report reads; past it the report says it was cut.
pub const MAX_RECORDS: u32 = 100_000;
/// A period without `from`: this many days before `to`.
pub const DEFAULT_DAYS: i64 = 90;

/// Beijing time: periods are whole local days, weeks start on Monday.
fn beijing() -> FixedOffset {
    crate::pages::shanghai()
}

/// A count under a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Count {
    pub name: String,
    pub count: u64,
}

/// Breaches of one office on one procedure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OfficePolicy {
    pub office: String,
    pub policy: String,
    pub count: u64,
}

/// Breaches in the week starting on `week` (a Monday, Beijing time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Week {
    pub week: NaiveDate,
    pub count: u64,
}

/// One breach, as the CSV lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Breach {
    pub late_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub policy: String,
    pub instance: String,
    pub step: String,
    pub role: String,
    /// The bound office, when the role is bound to one.
    pub office: Option<String>,
}

/// The lateness report of a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Lateness {
    /// The first day (Beijing time, inclusive) …
    pub from: NaiveDate,
    /// … and the last (inclusive).
    pub to: NaiveDate,
    /// Breaches in the period (a deadline breached once counts once per role late on it).
    pub total: u64,
    /// Whether more than [`MAX_RECORDS`] were found and the report counts only the first.
    pub truncated: bool,
    /// By office (the bound office, or the role where none is bound), most first.
    pub by_office: Vec<Count>,
    /// By procedure (policy), most first.
    pub by_policy: Vec<Count>,
    pub by_office_and_policy: Vec<OfficePolicy>,
    /// Every week of the period, in order, with none left out.
    pub by_week: Vec<Week>,
    pub breaches: Vec<Breach>,
}

/// Who counts as late: the bound office, else the role.
pub fn office_of(r: &LateRecord) -> String {
    r.step.office.clone().unwrap_or_else(|| r.step.role.clone())
}

/// The period's dates: `to` defaults to today, `from` to [`DEFAULT_DAYS`] before it.
pub fn period(
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let to = to.unwrap_or_else(|| now.with_timezone(&beijing()).date_naive());
    let from = from.unwrap_or(to - Duration::days(DEFAULT_DAYS - 1));
    if from > to {
        return Err(ApiError::invalid(format!("`from` ({from}) is after `to` ({to})")));
    }
    if (to - from).num_days() > 3_660 {
        return Err(ApiError::invalid("a period is at most ten years"));
    }
    Ok((from, to))
}

fn start_of(day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    beijing().from_local_datetime(&midnight).single().map_or_else(|| midnight.and_utc(), |t| t.with_timezone(&Utc))
}

fn monday_of(day: NaiveDate) -> NaiveDate {
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

/// The policies whose breaches `principal` may see; `None`: all (an admin).
async fn visible_policies(state: &AppState, principal: &Principal) -> Result<Option<BTreeSet<String>>, ApiError> {
    if principal.is_admin() {
        return Ok(None);
    }
    let mut out = BTreeSet::new();
    for p in state.store.list_policies().await? {
        let program = state.runtime.program(&p.name, Some(&p.hash)).await?;
        if program.policy.roles.iter().any(|r| r.oversight && principal.roles.contains(&r.name)) {
            out.insert(p.name);
        }
    }
    if out.is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            ProblemCode::RoleNotHeld.as_str(),
            "the lateness of offices is for a policy's oversight roles (纪委, 监督) and admins",
        ));
    }
    Ok(Some(out))
}

/// The report of the days `from ..= to` as `principal` may see it.
pub async fn report(
    state: &AppState,
    principal: &Principal,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Lateness, ApiError> {
    let visible = visible_policies(state, principal).await?;
    let records = state.store.late_steps(start_of(from), start_of(to + Duration::days(1)), MAX_RECORDS + 1).await?;
    let truncated = records.len() > MAX_RECORDS as usize;
    let records: Vec<&LateRecord> = records
        .iter()
        .take(MAX_RECORDS as usize)
        .filter(|r| visible.as_ref().is_none_or(|v| v.contains(&r.policy)))
        .collect();
    let mut offices: BTreeMap<String, u64> = BTreeMap::new();
    let mut policies: BTreeMap<String, u64> = BTreeMap::new();
    let mut pairs: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut weeks: BTreeMap<NaiveDate, u64> = BTreeMap::new();
    let mut week = monday_of(from);
    while week <= to {
        weeks.insert(week, 0);
        week += Duration::days(7);
    }
    for r in &records {
        let office = office_of(r);
        *offices.entry(office.clone()).or_default() += 1;
        *policies.entry(r.policy.clone()).or_default() += 1;
        *pairs.entry((office, r.policy.clone())).or_default() += 1;
        *weeks.entry(monday_of(r.step.late_at.with_timezone(&beijing()).date_naive())).or_default() += 1;
    }
    let ranked = |m: BTreeMap<String, u64>| {
        let mut v: Vec<Count> = m.into_iter().map(|(name, count)| Count { name, count }).collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        v
    };
    let mut by_office_and_policy: Vec<OfficePolicy> =
        pairs.into_iter().map(|((office, policy), count)| OfficePolicy { office, policy, count }).collect();
    by_office_and_policy
        .sort_by(|a, b| b.count.cmp(&a.count).then_with(|| (&a.office, &a.policy).cmp(&(&b.office, &b.policy))));
    Ok(Lateness {
        from,
        to,
        total: records.len() as u64,
        truncated,
        by_office: ranked(offices),
        by_policy: ranked(policies),
        by_office_and_policy,
        by_week: weeks.into_iter().map(|(week, count)| Week { week, count }).collect(),
        breaches: records
            .iter()
            .map(|r| Breach {
                late_at: r.step.late_at,
                due_at: r.step.due_at,
                policy: r.policy.clone(),
                instance: r.instance.clone(),
                step: r.step.node.clone(),
                role: r.step.role.clone(),
                office: r.step.office.clone(),
            })
            .collect(),
    })
}

/// The report's breaches as CSV (RFC 4180), one a line, times in Beijing time.
pub fn csv(report: &Lateness) -> String {
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let tz = beijing();
    let mut out = String::from("late_at,due_at,policy,instance,step,role,office\r\n");
    for b in &report.breaches {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\r\n",
            b.late_at.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
            b.due_at.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
            field(&b.policy),
            field(&b.instance),
            field(&b.step),
            field(&b.role),
            field(b.office.as_deref().unwrap_or("")),
        ));
    }
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A horizontal bar chart (no JavaScript): one bar per count, labelled, scaled to the largest.
pub fn bars_svg(id: &str, items: &[Count]) -> String {
    let (row, label_w, bar_w) = (22u64, 220u64, 420u64);
    let height = row * items.len().max(1) as u64 + 8;
    let max = items.iter().map(|c| c.count).max().unwrap_or(0).max(1);
    let mut out = format!(
        r#"<svg id="{id}" xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" role="img">"#,
        label_w + bar_w + 60
    );
    for (i, c) in items.iter().enumerate() {
        let y = row * i as u64 + 4;
        let w = (bar_w * c.count / max).max(1);
        out.push_str(&format!(
            r##"<text x="{}" y="{}" text-anchor="end" font-size="12">{}</text><rect x="{label_w}" y="{y}" width="{w}" height="{}" fill="#e06666"><title>{}: {}</title></rect><text x="{}" y="{}" font-size="12">{}</text>"##,
            label_w - 6,
            y + 14,
            xml(&c.name),
            row - 6,
            xml(&c.name),
            c.count,
            label_w + w + 4,
            y + 14,
            c.count
        ));
    }
    out.push_str("</svg>");
    out
}

/// A column chart of the weeks (no JavaScript), labelled every few weeks.
pub fn weeks_svg(id: &str, weeks: &[Week]) -> String {
    let n = weeks.len().max(1) as u64;
    // Columns share about 640 px; a label every few of them, so the labels do not overlap.
    let (col, chart_h, top) = ((640 / n).clamp(6, 48), 160u64, 16u64);
    let width = (col * n + 60).max(300);
    let max = weeks.iter().map(|w| w.count).max().unwrap_or(0).max(1);
    let every = 44u64.div_ceil(col) as usize;
    let mut out = format!(
        r#"<svg id="{id}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{}" role="img">"#,
        chart_h + top + 34
    );
    out.push_str(&format!(
        r##"<line x1="40" y1="{0}" x2="{1}" y2="{0}" stroke="#8894a8"/><text x="36" y="{2}" text-anchor="end" font-size="11">{max}</text><text x="36" y="{0}" text-anchor="end" font-size="11">0</text>"##,
        top + chart_h,
        width - 10,
        top + 10
    ));
    for (i, w) in weeks.iter().enumerate() {
        let x = 44 + col * i as u64;
        let h = chart_h * w.count / max;
        out.push_str(&format!(
            r##"<rect x="{x}" y="{}" width="{}" height="{h}" fill="#a61b1b"><title>{}: {}</title></rect>"##,
            top + chart_h - h,
            col - 3,
            w.week,
            w.count
        ));
        if i % every == 0 {
            out.push_str(&format!(
                r#"<text x="{x}" y="{}" font-size="10">{}</text>"#,
                top + chart_h + 14,
                w.week.format("%m-%d")
            ));
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn charts_scale_to_the_largest_and_escape_their_labels() {
        let items = vec![Count { name: "东湖社区".into(), count: 4 }, Count { name: "<b>&".into(), count: 1 }];
        let svg = bars_svg("offices", &items);
        assert!(
            svg.contains(r##"<rect x="220" y="4" width="420" height="16" fill="#e06666"><title>东湖社区: 4</title>"##),
            "{svg}"
        );
        assert!(svg.contains(r#"width="105" height="16""#), "{svg}");
        assert!(svg.contains("&lt;b&gt;&amp;") && !svg.contains("<b>"), "{svg}");
        let weeks = vec![
            Week { week: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(), count: 0 },
            Week { week: NaiveDate::from_ymd_opt(2026, 3, 9).unwrap(), count: 2 },
        ];
        let svg = weeks_svg("weeks", &weeks);
        assert!(
            svg.contains(
                r##"<rect x="92" y="16" width="45" height="160" fill="#a61b1b"><title>2026-03-09: 2</title>"##
            ),
            "{svg}"
        );
        assert!(svg.contains(r#"<text x="44" y="190" font-size="10">03-02</text>"#), "{svg}");
        assert!(svg.contains(r##"height="0" fill="#a61b1b"><title>2026-03-02: 0</title>"##), "{svg}");
    }

    #[test]
    fn a_period_defaults_to_the_last_90_days_and_refuses_a_reversed_one() {
        let now = Utc.with_ymd_and_hms(2026, 12, 4, 20, 0, 0).unwrap(); // 12-05 04:00 in Beijing
        let (from, to) = period(None, None, now).unwrap();
        assert_eq!((from.to_string(), to.to_string()), ("2026-09-07".into(), "2026-12-05".into()));
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert!(period(Some(d("2026-03-02")), Some(d("2026-03-01")), now).is_err());
        assert_eq!(monday_of(d("2026-03-08")), d("2026-03-02"));
        assert_eq!(start_of(d("2026-03-02")), Utc.with_ymd_and_hms(2026, 3, 1, 16, 0, 0).unwrap());
    }
}
