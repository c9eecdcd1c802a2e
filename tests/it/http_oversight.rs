//! Issue 12.6: which offices were late, on which procedures, how often, over time — through
//! `GET /v1/oversight/lateness` and its CSV, on SQLite and PostgreSQL. Three instances of a
//! procedure with working-day deadlines: two communities let their acceptance run late, and the
//! street's 民生办 its review of the third; the counts come from the lateness index the commits
//! keep, for oversight roles and admins only.

use reqwest::StatusCode;
use serde_json::json;

use crate::http::Env;

pub(crate) const LATE_POLICY: &str = r#"policy 超时演练 {
  param 社区名称: text
  role 社区居委会 bound by param 社区名称
  role 民生办
  role 纪委 "街道纪工委" oversight
  step 受理: task {
    by 社区居委会
    due 1 workdays
    on breach overdue
  }
  step 审核: approval {
    by 民生办
    after 受理
    due 1 workdays
    on breach overdue
  }
}"#;

/// Publishes the policy and lets three deadlines run late (the clock starts on Wednesday
/// 2012-03-21, 09:00 in Beijing); returns an oversight token and a clerk's.
pub(crate) async fn three_breaches(env: &Env) -> (String, String) {
    let published = env.post_text("/v1/policies", &env.admin, LATE_POLICY).await;
    assert_eq!(published.status, StatusCode::CREATED, "{}", published.body);
    let donghu = env.token("东湖-王", "东湖社区", &["社区居委会"]).await;
    let oversight = env.token("纪委-赵", "街道纪工委", &["纪委"]).await;
    for (id, community) in [("d-1", "东湖社区"), ("d-2", "东湖社区"), ("w-1", "西湖社区")] {
        let start = json!({ "policy": "超时演练", "id": id, "params": { "社区名称": community } });
        assert_eq!(env.post("/v1/instances", &env.admin, start).await.status, StatusCode::CREATED);
    }
    // d-1 accepted in time: its review by 民生办 runs late instead.
    let done = json!({ "action": "complete", "data": { "report": "已受理" } });
    assert_eq!(env.act("d-1", "受理", &donghu, done).await.status, StatusCode::OK);
    env.advance_to("2012-03-30T09:00:00+08:00").await;
    (oversight, donghu)
}

async fn issue_12_6_late_offices_by_office_policy_and_week(env: Env) {
    let (oversight, clerk) = three_breaches(&env).await;
    let path = "/v1/oversight/lateness?from=2012-03-01&to=2012-03-31";
    let report = env.get(path, &oversight).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let b = &report.body;
    assert_eq!(
        (&b["from"], &b["to"], &b["total"], &b["truncated"]),
        (&json!("2012-03-01"), &json!("2012-03-31"), &json!(3), &json!(false))
    );
    assert_eq!(
        b["by_office"],
        json!([{ "name": "东湖社区", "count": 1 }, { "name": "民生办", "count": 1 }, { "name": "西湖社区", "count": 1 }])
    );
    assert_eq!(b["by_policy"], json!([{ "name": "超时演练", "count": 3 }]));
    assert_eq!(
        b["by_office_and_policy"],
        json!([
            { "office": "东湖社区", "policy": "超时演练", "count": 1 },
            { "office": "民生办", "policy": "超时演练", "count": 1 },
            { "office": "西湖社区", "policy": "超时演练", "count": 1 },
        ])
    );
    // Every week of the period, Mondays in Beijing time; the breaches fell in the week of 03-19
    // (due Thursday 03-22 and Friday 03-23, 24:00).
    let weeks: Vec<(String, u64)> = b["by_week"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["week"].as_str().unwrap().to_string(), w["count"].as_u64().unwrap()))
        .collect();
    let week = |d: &str, n: u64| (d.to_string(), n);
    assert_eq!(
        weeks,
        [
            week("2012-02-27", 0),
            week("2012-03-05", 0),
            week("2012-03-12", 0),
            week("2012-03-19", 3),
            week("2012-03-26", 0)
        ]
    );
    let breaches = b["breaches"].as_array().unwrap();
    let mut who: Vec<(String, String, String)> = breaches
        .iter()
        .map(|x| {
            let office = x["office"].as_str().unwrap_or("-").to_string();
            (x["instance"].as_str().unwrap().to_string(), x["step"].as_str().unwrap().to_string(), office)
        })
        .collect();
    who.sort();
    let row = |i: &str, s: &str, o: &str| (i.to_string(), s.to_string(), o.to_string());
    assert_eq!(who, [row("d-1", "审核", "-"), row("d-2", "受理", "东湖社区"), row("w-1", "受理", "西湖社区")]);

    // The CSV: a header and one line a breach, times in Beijing time.
    let csv = env
        .client
        .get(format!("{}/v1/oversight/lateness.csv?from=2012-03-01&to=2012-03-31", env.base))
        .bearer_auth(&oversight)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "late_at,due_at,policy,instance,step,role,office");
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines.iter().any(|l| l.ends_with(",超时演练,w-1,受理,社区居委会,西湖社区")), "{text}");

    // A period before the breaches counts none; a reversed one is refused; a clerk may not look.
    let before = env.get("/v1/oversight/lateness?from=2012-03-01&to=2012-03-18", &oversight).await;
    assert_eq!(before.body["total"], 0);
    let reversed = env.get("/v1/oversight/lateness?from=2012-03-31&to=2012-03-01", &oversight).await;
    assert_eq!(reversed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reversed.body["detail"], "`from` (2012-03-31) is after `to` (2012-03-01)");
    let refused = env.get(path, &clerk).await;
    assert_eq!((refused.status, &refused.body["code"]), (StatusCode::FORBIDDEN, &json!("ROLE_NOT_HELD")));
    assert_eq!(env.get(path, &env.admin).await.body["total"], 3);
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_6_late_offices_by_office_policy_and_week_on_sqlite() {
    issue_12_6_late_offices_by_office_policy_and_week(Env::sqlite(false).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_6_late_offices_by_office_policy_and_week_on_postgres() {
    if let Some(env) = Env::postgres_with("oversight", false).await {
        issue_12_6_late_offices_by_office_policy_and_week(env).await;
    }
}
