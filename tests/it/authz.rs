//! Issue 9: the authorization matrix. Every operation of `/openapi.json`, called by each kind of
//! caller — no token, a bad token, another office holding the same role, another role of the
//! policy, oversight, the admin — answers the status of one table, and the table covers every
//! operation the API documents (a new endpoint fails this test until it has its row).

use std::collections::BTreeSet;
use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};

use civicflow::http::auth::create_token;
use civicflow::serve::{Config, Database, Server};
use civicflow_engine::store::sqlite::SqliteStore;

const POLICY: &str = r#"
policy 授权矩阵 {
  param 社区名称: text
  role 社区居委会 bound by param 社区名称
  role 街道办事处
  role 纪委 "街道纪工委" oversight
  step 申请: task {
    by 社区居委会
    form {
      事项: text
      联系电话: text personal
    }
  }
  step 审批: approval { by 街道办事处 after 申请 }
}"#;

/// The callers, in the order of a row's statuses.
const CALLERS: [&str; 6] = ["no token", "bad token", "other office", "other role", "oversight", "admin"];

/// One operation: its method, the documented path, the path called, a body, and the status each
/// caller gets.
struct Row {
    method: Method,
    documented: &'static str,
    path: &'static str,
    body: Option<Value>,
    expect: [u16; 6],
}

fn row(method: Method, documented: &'static str, path: &'static str, body: Option<Value>, expect: [u16; 6]) -> Row {
    Row { method, documented, path, body, expect }
}

/// The table. `I` is the instance started for 东湖社区 (its bound community is not a caller:
/// the matrix is about everyone else).
fn table() -> Vec<Row> {
    use Method as M;
    let publish = Some(json!("__POLICY__"));
    let act = Some(json!({ "action": "submit_form", "data": { "事项": "加装电梯", "联系电话": "13800000000" } }));
    let start = Some(json!({ "policy": "授权矩阵", "params": { "社区名称": "西湖社区" } }));
    vec![
        // Open to anyone: health and the contract.
        row(M::GET, "/healthz", "/healthz", None, [200, 200, 200, 200, 200, 200]),
        // Prometheus metrics, for a scraper without a token (DESIGN: beside /healthz): counts by
        // command, result and store operation only — no principal, office or instance.
        row(M::GET, "/metrics", "/metrics", None, [200, 200, 200, 200, 200, 200]),
        // Reading is for every principal; what is personal is redacted, not refused (R6.2).
        // Issue 12.6: the lateness of offices, for the policy's oversight role and admins.
        row(M::GET, "/v1/oversight/lateness", "/v1/oversight/lateness", None, [401, 401, 403, 403, 200, 200]),
        row(M::GET, "/v1/oversight/lateness.csv", "/v1/oversight/lateness.csv", None, [401, 401, 403, 403, 200, 200]),
        // Issue 12.2: the audit log's key and latest checkpoint, for witnesses without a token.
        row(M::GET, "/v1/audit/key", "/v1/audit/key", None, [200, 200, 200, 200, 200, 200]),
        row(M::GET, "/v1/audit/checkpoint", "/v1/audit/checkpoint", None, [200, 200, 200, 200, 200, 200]),
        // Issue 12.3: proofs carry leaf hashes (a guess at an event could be confirmed with one):
        // every principal, as the histories.
        row(
            M::GET,
            "/v1/audit/proof/inclusion",
            "/v1/audit/proof/inclusion?index=0&size=1",
            None,
            [401, 401, 200, 200, 200, 200],
        ),
        row(
            M::GET,
            "/v1/audit/proof/consistency",
            "/v1/audit/proof/consistency?first=1&second=1",
            None,
            [401, 401, 200, 200, 200, 200],
        ),
        row(
            M::GET,
            "/v1/instances/{id}/history/{seq}/proof",
            "/v1/instances/I/history/1/proof?size=1",
            None,
            [401, 401, 200, 200, 200, 200],
        ),
        row(M::GET, "/v1/policies", "/v1/policies", None, [401, 401, 200, 200, 200, 200]),
        row(M::GET, "/v1/policies/{name}", "/v1/policies/授权矩阵", None, [401, 401, 200, 200, 200, 200]),
        row(M::GET, "/v1/policies/{name}/graph", "/v1/policies/授权矩阵/graph", None, [401, 401, 200, 200, 200, 200]),
        row(M::GET, "/v1/instances", "/v1/instances", None, [401, 401, 200, 200, 200, 200]),
        row(M::GET, "/v1/instances/{id}", "/v1/instances/I", None, [401, 401, 200, 200, 200, 200]),
        row(M::GET, "/v1/instances/{id}/history", "/v1/instances/I/history", None, [401, 401, 200, 200, 200, 200]),
        row(
            M::GET,
            "/v1/instances/{id}/history/verify",
            "/v1/instances/I/history/verify",
            None,
            [401, 401, 200, 200, 200, 200],
        ),
        row(
            M::GET,
            "/v1/instances/{id}/calendar.ics",
            "/v1/instances/I/calendar.ics",
            None,
            [401, 401, 200, 200, 200, 200],
        ),
        row(M::GET, "/v1/inbox", "/v1/inbox", None, [401, 401, 200, 200, 200, 200]),
        row(M::GET, "/v1/events", "/v1/events", None, [401, 401, 200, 200, 200, 200]),
        row(M::GET, "/v1/calendars", "/v1/calendars", None, [401, 401, 200, 200, 200, 200]),
        row(M::GET, "/v1/admin/clock", "/v1/admin/clock", None, [401, 401, 200, 200, 200, 200]),
        // Acting on 东湖社区's step: another community with the same role is refused (F035),
        // another role (F006), oversight and the admin too (they hold no role of the step).
        row(
            M::POST,
            "/v1/instances/{id}/steps/{step}/actions",
            "/v1/instances/I/steps/申请/actions",
            act,
            [401, 401, 403, 403, 403, 403],
        ),
        // The next cycle: the policy does not recur; every principal learns there is none (F042).
        row(
            M::POST,
            "/v1/instances/{id}/next-cycle",
            "/v1/instances/I/next-cycle",
            Some(json!({ "params": {} })),
            [401, 401, 409, 409, 409, 409],
        ),
        // Suspending and resuming (issue 11.3): only a role the policy declares `may suspend`;
        // this one declares none, so everyone is refused (F052), the admin too.
        row(
            M::POST,
            "/v1/instances/{id}/suspend",
            "/v1/instances/I/suspend",
            Some(json!({ "reason": "等待法院裁定" })),
            [401, 401, 403, 403, 403, 403],
        ),
        row(
            M::POST,
            "/v1/instances/{id}/resume",
            "/v1/instances/I/resume",
            Some(json!({ "reason": "恢复办理" })),
            [401, 401, 403, 403, 403, 403],
        ),
        // Correcting parameters (issue 11.4): only a role the policy declares `may correct`; this
        // one declares none, so everyone is refused (F059), the admin too.
        row(
            M::POST,
            "/v1/instances/{id}/corrections",
            "/v1/instances/I/corrections",
            Some(json!({ "params": {}, "reason": "录入有误" })),
            [401, 401, 403, 403, 403, 403],
        ),
        // Starting an instance: any principal (the policy has no starter role).
        row(M::POST, "/v1/instances", "/v1/instances", start, [401, 401, 201, 201, 201, 201]),
        // The admin's: publishing, the clock, calendars, tokens.
        row(M::POST, "/v1/policies", "/v1/policies", publish, [401, 401, 403, 403, 403, 200]),
        row(
            M::POST,
            "/v1/admin/clock",
            "/v1/admin/clock",
            Some(json!({ "advance_to": "2026-03-02T10:00:00+08:00" })),
            [401, 401, 403, 403, 403, 200],
        ),
        row(M::POST, "/v1/admin/calendars", "/v1/admin/calendars", Some(json!("{}")), [401, 401, 403, 403, 403, 422]),
        row(M::GET, "/v1/admin/tokens", "/v1/admin/tokens", None, [401, 401, 403, 403, 403, 200]),
        row(
            M::POST,
            "/v1/admin/tokens",
            "/v1/admin/tokens",
            Some(json!({ "name": "新", "office": "街道", "roles": ["街道办事处"] })),
            [401, 401, 403, 403, 403, 201],
        ),
        row(M::DELETE, "/v1/admin/tokens/{principal}", "/v1/admin/tokens/无此人", None, [401, 401, 403, 403, 403, 404]),
        // Migrations (issue 11.5): the admin's; no such version, no such plan.
        row(
            M::POST,
            "/v1/migrations",
            "/v1/migrations",
            Some(json!({ "policy": "授权矩阵", "from": "2026.1", "to": "2026.2" })),
            [401, 401, 403, 403, 403, 404],
        ),
        row(M::GET, "/v1/migrations/{id}", "/v1/migrations/mig-0", None, [401, 401, 403, 403, 403, 404]),
        row(M::POST, "/v1/migrations/{id}/apply", "/v1/migrations/mig-0/apply", None, [401, 401, 403, 403, 403, 404]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_every_kind_of_caller_as_the_table_says() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("civicflow.db")).await.unwrap();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), Database::Store(Arc::new(store)));
    config.publish_bundled = false;
    // Authorization only: the limit on failed authentications (tested in `limits`) is lifted.
    config.rates.auth_failures =
        civicflow::http::limits::Rate { period: std::time::Duration::from_millis(1), burst: 10_000 };
    config.simulated_clock = Some(chrono::DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00").unwrap().into());
    let server = Server::start(config).await.unwrap();
    let base = format!("http://{}", server.addr);
    let admin = server.admin_token.clone().unwrap();
    let store = server.state.store.clone();
    let token = |name: &'static str, office: &'static str, role: &'static str| {
        let store = store.clone();
        async move { create_token(store.as_ref(), name, office, &[role.to_string()]).await.unwrap() }
    };
    let other_office = token("西湖主任", "西湖社区", "社区居委会").await;
    let other_role = token("街道科员", "街道办事处", "街道办事处").await;
    let oversight = token("纪委干部", "街道纪工委", "纪委").await;
    let client = reqwest::Client::new();
    let published = client.post(format!("{base}/v1/policies")).bearer_auth(&admin).body(POLICY).send().await.unwrap();
    assert_eq!(published.status(), 201);
    let started = client
        .post(format!("{base}/v1/instances"))
        .bearer_auth(&admin)
        .json(&json!({ "policy": "授权矩阵", "id": "东湖-1", "params": { "社区名称": "东湖社区" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 201);

    // The table covers exactly the operations /openapi.json documents.
    let openapi: Value = client.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
    let documented: BTreeSet<(String, String)> = openapi["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| ops.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), path.clone())))
        .collect();
    let rows = table();
    let covered: BTreeSet<(String, String)> =
        rows.iter().map(|r| (r.method.to_string(), r.documented.to_string())).collect();
    assert_eq!(covered, documented, "one row per documented operation");

    let tokens: [Option<String>; 6] = [
        None,
        Some("cf_not-a-token".into()),
        Some(other_office),
        Some(other_role),
        Some(oversight),
        Some(admin.clone()),
    ];
    let mut wrong = Vec::new();
    for r in &rows {
        for (caller, token) in CALLERS.iter().zip(&tokens) {
            let path = r.path.replace("/I/", "/东湖-1/").replace("/I", "/东湖-1");
            let mut request = client.request(r.method.clone(), format!("{base}{path}"));
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            request = match &r.body {
                Some(Value::String(s)) if s == "__POLICY__" => request.body(POLICY),
                Some(Value::String(s)) => request.body(s.clone()),
                Some(b) => request.json(b),
                None => request,
            };
            let response = request.send().await.unwrap();
            let got = response.status().as_u16();
            let want = r.expect[CALLERS.iter().position(|c| c == caller).unwrap()];
            if got != want {
                let body = response.text().await.unwrap_or_default();
                wrong.push(format!("{} {} as {caller}: {got}, expected {want}: {body}", r.method, r.path));
            }
            // An event stream stays open: it is dropped here.
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    server.stop().await;
}
