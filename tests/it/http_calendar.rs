//! R0.2 end to end through HTTP on a simulated clock: a deadline that falls in a year without
//! calendar data (2027) opens its step "awaiting the 2027 calendar"; an admin posts the year
//! (`POST /v1/admin/calendars`, the test fixture `tests/data/calendar-test-fixture/2027.json`,
//! which is NOT the State Council's arrangement); the deadline is then computed to the exact
//! instant, its timer exists, and the breach is recorded at that instant. On SQLite and PostgreSQL.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::AssertSqlSafe;

use civicflow::http::auth::create_token;
use civicflow::serve::{Config, Database, Server};
use civicflow_engine::store::postgres::PgStore;
use civicflow_engine::store::sqlite::SqliteStore;
use civicflow_engine::store::Store;

const FIXTURE_2027: &str = include_str!("../data/calendar-test-fixture/2027.json");

const DEMAND: &str = r#"
policy 诉求办理 {
  timezone "Asia/Shanghai"
  role 首办部门
  role 区领导
  step 办理: task {
    by 首办部门
    due 10 workdays
    remind 2 workdays before
    on breach escalate 区领导
  }
}"#;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Env {
    server: Server,
    client: reqwest::Client,
    base: String,
    admin: String,
}

impl Env {
    async fn start(store: Arc<dyn Store>) -> Env {
        let mut config = Config::new("127.0.0.1:0".parse().unwrap(), Database::Store(store));
        // Monday 2026-12-21 10:00: 12-22 … 12-31 hold 8 working days; the 9th and 10th are in 2027.
        config.simulated_clock = Some(t("2026-12-21T10:00:00+08:00"));
        config.publish_bundled = false;
        let server = Server::start(config).await.unwrap();
        let admin = server.admin_token.clone().unwrap();
        let base = format!("http://{}", server.addr);
        Env { server, client: reqwest::Client::new(), base, admin }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<String>,
    ) -> (StatusCode, Value) {
        let mut r = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(b) = body {
            r = r.header("content-type", "application/json").body(b);
        }
        let response = r.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.send(reqwest::Method::GET, path, token, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn step(&self, id: &str) -> Value {
        let view = self.get(&format!("/v1/instances/{id}"), &self.admin).await;
        view["steps"].as_array().unwrap().iter().find(|s| s["id"] == "办理").cloned().unwrap()
    }

    /// A page's HTML as the principal of `token` sees it: signed in through `/signin` (cookies
    /// and the CSRF nonce by hand).
    async fn page(&self, token: &str, path: &str) -> String {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let mut cookies: Vec<String> = Vec::new();
        let keep = |cookies: &mut Vec<String>, r: &reqwest::Response| {
            for v in r.headers().get_all(reqwest::header::SET_COOKIE) {
                let first = v.to_str().unwrap().split(';').next().unwrap().to_string();
                cookies.retain(|c| c.split('=').next() != first.split('=').next());
                cookies.push(first);
            }
        };
        let form = client.get(format!("{}/signin", self.base)).send().await.unwrap();
        keep(&mut cookies, &form);
        let html = form.text().await.unwrap();
        let marker = "name=\"csrf\" value=\"";
        let start = html.find(marker).unwrap() + marker.len();
        let csrf = html[start..].split('"').next().unwrap().to_string();
        let signed = client
            .post(format!("{}/signin", self.base))
            .header(reqwest::header::COOKIE, cookies.join("; "))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={}&token={}", enc(&csrf), enc(token)))
            .send()
            .await
            .unwrap();
        keep(&mut cookies, &signed);
        let page = client
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, cookies.join("; "))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        page.text().await.unwrap()
    }

    async fn history(&self, id: &str) -> Vec<Value> {
        self.get(&format!("/v1/instances/{id}/history"), &self.admin).await["events"].as_array().unwrap().clone()
    }
}

async fn r0_2_scenario(env: Env) {
    let admin = env.admin.clone();
    let (status, body) = env.send(reqwest::Method::POST, "/v1/policies", &admin, Some(DEMAND.to_string())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let store = env.server.state.store.clone();
    let clerk = create_token(store.as_ref(), "王科员", "城管科", &["首办部门".to_string()]).await.unwrap();
    let start = json!({ "policy": "诉求办理", "params": {}, "id": "demand-2026-12" });
    let (status, body) = env.send(reqwest::Method::POST, "/v1/instances", &clerk, Some(start.to_string())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = "demand-2026-12";

    // The step is open; its deadline awaits the 2027 calendar; no timer.
    let step = env.step(id).await;
    assert_eq!(step["status"], "open", "{step}");
    assert_eq!(step["due_at"], Value::Null);
    assert_eq!(step["due_awaiting_calendar"], 2027);
    assert_eq!(step["due_note"], "awaiting the 2027 calendar");
    let inbox = env.get("/v1/inbox", &clerk).await;
    let item = inbox.as_array().unwrap().iter().find(|i| i["instance"] == id).cloned().unwrap();
    assert_eq!(item["due_awaiting_calendar"], 2027, "{item}");
    assert_eq!(item["due_note"], "awaiting the 2027 calendar");
    assert_eq!(store.pending_timers(id).await.unwrap(), []);
    let calendars = env.get("/v1/calendars", &clerk).await;
    let years: Vec<i64> = calendars["years"].as_array().unwrap().iter().map(|y| y["year"].as_i64().unwrap()).collect();
    assert_eq!(years, (2004..=2026).collect::<Vec<_>>());

    // The pages say so too: the inbox and the instance's timeline, in Chinese and in English.
    assert!(env.page(&clerk, "/inbox").await.contains("待2027年日历公布"));
    assert!(env.page(&clerk, "/inbox?lang=en").await.contains("awaiting the 2027 calendar"));
    assert!(env.page(&admin, &format!("/instances/{id}")).await.contains("待2027年日历公布"));

    // Adding a year: admin only, and its notice's date is required; neither records anything.
    let len = env.history(id).await.len();
    let (status, body) =
        env.send(reqwest::Method::POST, "/v1/admin/calendars", &clerk, Some(FIXTURE_2027.to_string())).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("ADMIN_REQUIRED")), "{body}");
    let undated = FIXTURE_2027.replace("\"date\": \"2026-11-20\",", "");
    let (status, body) = env.send(reqwest::Method::POST, "/v1/admin/calendars", &admin, Some(undated)).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("CAL006")), "{body}");
    assert_eq!(
        body["detail"],
        "the request body: source.notices[0].date is required to add a year: it is recorded in the history of \
         every instance the year affects"
    );
    assert_eq!(env.history(id).await.len(), len);

    // The year is added at 2026-12-28 09:00.
    env.send(
        reqwest::Method::POST,
        "/v1/admin/clock",
        &admin,
        Some(json!({ "advance_to": "2026-12-28T09:00:00+08:00" }).to_string()),
    )
    .await;
    let (status, body) =
        env.send(reqwest::Method::POST, "/v1/admin/calendars", &admin, Some(FIXTURE_2027.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["year"], 2027);
    assert_eq!(body["instances"], json!([id]));
    // 2027-01-01 … 01-03 off (fixture): Monday 01-04 is the 9th working day, Tuesday 01-05 the
    // 10th: due at 24:00 of 01-05.
    let step = env.step(id).await;
    assert_eq!(step["due_at"], "2027-01-05T16:00:00Z", "{step}");
    assert_eq!(step.get("due_awaiting_calendar"), None);
    let history = env.history(id).await;
    let applied = history.last().unwrap();
    assert_eq!(applied["kind"], "calendar_applied");
    assert_eq!(applied["actor"], "admin");
    assert_eq!(applied["at"], "2026-12-28T01:00:00Z");
    assert_eq!(
        applied["payload"]["notice"]["title"],
        "TEST FIXTURE — not a State Council notice: 测试用2027年节假日安排"
    );
    assert_eq!(applied["payload"]["notice"]["date"], "2026-11-20");
    assert_eq!(applied["payload"]["added_by"], "admin");
    assert_eq!(applied["payload"]["due_at"], "2027-01-05T16:00:00Z");
    let timers: Vec<(String, DateTime<Utc>)> =
        store.pending_timers(id).await.unwrap().into_iter().map(|t| (t.kind, t.due_at)).collect();
    assert_eq!(
        timers,
        [("reminder".to_string(), t("2027-01-03T16:00:00Z")), ("due".to_string(), t("2027-01-05T16:00:00Z"))]
    );
    let calendars = env.get("/v1/calendars", &clerk).await;
    let y2027 = calendars["years"].as_array().unwrap().last().cloned().unwrap();
    assert_eq!((y2027["year"].as_i64(), y2027["notices"][0]["date"].as_str()), (Some(2027), Some("2026-11-20")));
    assert_eq!(store.calendar_years().await.unwrap().len(), 1);

    // Past the deadline: the breach is recorded at its exact instant.
    env.send(
        reqwest::Method::POST,
        "/v1/admin/clock",
        &admin,
        Some(json!({ "advance_to": "2027-01-08T09:00:00+08:00" }).to_string()),
    )
    .await;
    let history = env.history(id).await;
    let overdue = history.iter().find(|e| e["kind"] == "overdue").cloned().unwrap();
    assert_eq!(overdue["at"], "2027-01-05T16:00:00Z");
    assert_eq!(overdue["payload"]["due_at"], "2027-01-05T16:00:00Z");
    let escalated = history.iter().find(|e| e["kind"] == "escalated").cloned().unwrap();
    assert_eq!(
        (escalated["at"].as_str(), escalated["payload"]["role"].as_str()),
        (Some("2027-01-05T16:00:00Z"), Some("区领导"))
    );
    env.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r0_2_sqlite_a_deadline_in_2027_waits_for_the_year_then_fires_at_its_instant() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("civicflow.db")).await.unwrap();
    r0_2_scenario(Env::start(Arc::new(store.clone())).await).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r0_2_postgres_a_deadline_in_2027_waits_for_the_year_then_fires_at_its_instant() {
    let Some(crate::pg::Schema { admin, name: schema, options }) =
        crate::pg::fresh_schema("http_calendar", "cal", "r0_2").await
    else {
        return;
    };
    let store = PgStore::connect_with(options, 8).await.unwrap();
    r0_2_scenario(Env::start(Arc::new(store.clone())).await).await;
    store.close().await;
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&admin).await.unwrap();
    admin.close().await;
}

/// Percent-encodes a form value.
fn enc(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// R0.2: `serve --calendar-dir` adds the year at start (the waiting instance records it, with
/// the directory as who added it), and a restart without the directory keeps the year (stored in
/// `calendar_years`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r0_2_calendar_dir_at_start_and_a_restart_keep_the_year() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("civicflow.db")).await.unwrap();
    let first = Env::start(Arc::new(store.clone())).await;
    let admin = first.admin.clone();
    let (status, body) = first.send(reqwest::Method::POST, "/v1/policies", &admin, Some(DEMAND.to_string())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let start = json!({ "policy": "诉求办理", "params": {}, "id": "demand-dir" });
    let (status, body) = first.send(reqwest::Method::POST, "/v1/instances", &admin, Some(start.to_string())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(first.step("demand-dir").await["due_awaiting_calendar"], 2027);
    first.server.stop().await;

    // Started again with the directory of the test fixture.
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/calendar-test-fixture");
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), Database::Store(Arc::new(store.clone())));
    config.simulated_clock = Some(t("2026-12-22T09:00:00+08:00"));
    config.publish_bundled = false;
    config.calendar_dir = Some(fixtures.clone());
    let server = Server::start(config).await.unwrap();
    let second = Env { base: format!("http://{}", server.addr), server, client: reqwest::Client::new(), admin };
    let step = second.step("demand-dir").await;
    assert_eq!(step["due_at"], "2027-01-05T16:00:00Z", "{step}");
    let history = second.history("demand-dir").await;
    let applied = history.last().unwrap();
    assert_eq!(
        (applied["kind"].as_str(), applied["actor"].as_str()),
        (Some("calendar_applied"), Some("serve --calendar-dir"))
    );
    assert_eq!(applied["payload"]["added_by"], "serve --calendar-dir");
    let timers = store.pending_timers("demand-dir").await.unwrap();
    assert_eq!(timers.iter().map(|t| t.due_at).max(), Some(t("2027-01-05T16:00:00Z")));
    let calendars = second.get("/v1/calendars", &second.admin).await;
    let origin = calendars["years"].as_array().unwrap().last().unwrap()["origin"].as_str().unwrap().to_string();
    assert_eq!(origin, fixtures.join("2027.json").display().to_string());
    second.server.stop().await;

    // And again without it: the year comes from the store; nothing more is recorded.
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), Database::Store(Arc::new(store.clone())));
    config.simulated_clock = Some(t("2026-12-22T10:00:00+08:00"));
    config.publish_bundled = false;
    let server = Server::start(config).await.unwrap();
    let third =
        Env { base: format!("http://{}", server.addr), server, client: reqwest::Client::new(), admin: second.admin };
    let calendars = third.get("/v1/calendars", &third.admin).await;
    let last = calendars["years"].as_array().unwrap().last().cloned().unwrap();
    assert_eq!((last["year"].as_i64(), last["origin"].as_str()), (Some(2027), Some("stored calendar year 2027")));
    assert_eq!(third.history("demand-dir").await.len(), history.len());
    third.server.stop().await;
    store.close().await;
}

#[test]
fn r0_2_calendar_check_describes_the_year() {
    let year = civicflow_engine::calendar::YearCalendar::parse(FIXTURE_2027, "2027.json").unwrap();
    let text = civicflow::calendars::describe(&year);
    let lines: Vec<&str> = text.lines().take(4).collect();
    assert_eq!(
        lines,
        [
            "year 2027",
            "notice 1: TEST FIXTURE — not a State Council notice: 测试用2027年节假日安排 (2026-11-20)",
            "11 holidays, 1 make-up working days (调休上班)",
            "  2027-01-01 Fri holiday 元旦",
        ]
    );
}
