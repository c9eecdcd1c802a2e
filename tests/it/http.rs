//! HTTP end-to-end: the real server (`civicflow::serve::Server`, the very code `civicflow serve`
//! runs) on a loopback port (`127.0.0.1:0`), in-process, on a simulated clock, driven through
//! reqwest by principals of several offices.
//!
//! The election is a reduced one (`DRILL`, 12 nodes) that keeps the rules under test: R2.1 (the
//! party organisation, then the residents' committee, then the oversight committee), R2.4 (a
//! form rule with its message), R2.14 (80 of 100 present is refused, 81 is a quorum), R2.16
//! (more than half of the registered voters must cast; elected with more than half of the
//! ballots cast), R2.18 (a filing cannot be rejected; an approval can). The same scenario runs on
//! SQLite (a temp file) and on PostgreSQL (a schema of its own; `CIVICFLOW_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; skipped with a message when unreachable, failed
//! when `CI=true`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{AssertSqlSafe, PgPool};

use civicflow::http::auth::create_token;
use civicflow::serve::{Config, Database, Server};
use civicflow_engine::runtime::CheckpointPolicy;
use civicflow_engine::store::postgres::PgStore;
use civicflow_engine::store::sqlite::SqliteStore;
use civicflow_engine::store::Store;

const DRILL: &str = r#"
// A reduced 社区两委换届选举 for the HTTP end-to-end tests.
policy 换届演练 {
  title "社区两委换届选举(演练)"
  version "e2e.1"
  timezone "Asia/Shanghai"
  calendar "cn"

  param 开始: date = 2012-03-21
  param 党员人数: int
  param 党组织席位: int
  param 居委会席位: int
  param 登记选民数: int
  let 党组织职数下限: int = match 党员人数 { ..=50 => 3, 51..=99 => 5, 100.. => 7 }
  let 党组织职数上限: int = match 党员人数 { ..=50 => 5, 51..=99 => 7, 100.. => 9 }

  role 街道党工委
  role 街道选举领导小组
  role 区民政局
  role 社区党组织
  role 社区居民选举委员会

  phase 选前准备 {
    window 开始 .. 开始 + 10 days
    step 制定工作方案: task {
      by 街道选举领导小组
      due 3 workdays
      on breach escalate 街道党工委
      form {
        方案: text
        // R2.4
        require 党组织席位 >= 党组织职数下限 and 党组织席位 <= 党组织职数上限 else "R2.4 党组织委员职数不在职数范围内"
      }
    }
  }

  // R2.1: the party organisation, then the residents' committee, then the oversight committee.
  phase 正式选举 {
    after 选前准备
    window 开始 + 11 days .. 开始 + 60 days
    step 党组织换届: call 党组织换届选举 {
      with 应到会党员数 = 党员人数, 委员席位 = 党组织席位
    }
    step 居委会换届: call 居委会换届选举 {
      after 党组织换届
      with 应选名额 = 居委会席位, 选民总数 = 登记选民数
    }
    step 监督委员会换届: call 监督委员会换届选举 {
      after 居委会换届
    }
  }

  procedure 党组织换届选举 {
    param 应到会党员数: int
    param 委员席位: int
    step 党员大会选举: vote {
      by 社区党组织
      seats 委员席位
      eligible 应到会党员数
      quorum present > 4/5 * eligible   // R2.14
      elect votes > 1/2 * present
    }
    // R2.18: the members are filed (no veto); the secretary needs an approval.
    step 委员备案: filing { by 街道党工委 after 党员大会选举 }
    step 书记批准: approval {
      by 街道党工委
      after 党员大会选举
      on rejected return 党员大会选举
    }
  }

  procedure 居委会换届选举 {
    param 应选名额: int
    param 选民总数: int
    step 投票选举: vote {
      by 社区居民选举委员会
      seats 应选名额
      eligible 选民总数
      quorum cast > 1/2 * eligible   // R2.16
      elect votes > 1/2 * cast       // R2.16
    }
    step 报民政局备案: filing { by 区民政局 after 投票选举 }
  }

  procedure 监督委员会换届选举 {
    step 选举监督委员会: task { by 社区居民选举委员会 }
  }
}
"#;

const PLAN: &str = "选前准备/制定工作方案";
const PARTY_VOTE: &str = "正式选举/党组织换届/党员大会选举";
const PARTY_FILING: &str = "正式选举/党组织换届/委员备案";
const PARTY_APPROVAL: &str = "正式选举/党组织换届/书记批准";
const RESIDENTS_VOTE: &str = "正式选举/居委会换届/投票选举";
const RESIDENTS_FILING: &str = "正式选举/居委会换届/报民政局备案";
const OVERSIGHT: &str = "正式选举/监督委员会换届/选举监督委员会";

// ---- harness ----

pub(crate) enum Backend {
    Sqlite { store: SqliteStore, _dir: tempfile::TempDir },
    Postgres { store: PgStore, admin: PgPool, schema: String },
}

/// Rewrites every packed snapshot in SQLite's `snapshots` as its JSON text (the format written
/// before `store::packed`, which the store still reads), so that a test can forge one with
/// SQLite's `json_set` as someone with the database file could.
pub(crate) async fn unpack_snapshots(store: &SqliteStore) {
    let packed: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT instance, body FROM snapshots WHERE typeof(body) = 'blob'")
            .fetch_all(store.writer_pool())
            .await
            .unwrap();
    for (instance, body) in packed {
        let text = civicflow_engine::store::packed::unpack(civicflow_engine::store::packed::Body::Blob(&body)).unwrap();
        sqlx::query("UPDATE snapshots SET body = ? WHERE instance = ?")
            .bind(text.as_ref())
            .bind(&instance)
            .execute(store.writer_pool())
            .await
            .unwrap();
    }
}

pub(crate) struct Env {
    pub(crate) server: Server,
    pub(crate) backend: Backend,
    /// Issue 12.2: the directory of the audit key file (`audit.key`).
    pub(crate) keys: tempfile::TempDir,
    pub(crate) client: reqwest::Client,
    pub(crate) base: String,
    pub(crate) admin: String,
}

/// A response: status, body (JSON, or the text as a JSON string), headers.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
    pub(crate) headers: reqwest::header::HeaderMap,
}

pub(crate) fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

impl Env {
    async fn start(store: Arc<dyn Store>, backend: Backend, publish_bundled: bool) -> Env {
        let mut config = Config::new(loopback(), Database::Store(store));
        config.simulated_clock = Some(t("2012-03-21T09:00:00+08:00"));
        config.publish_bundled = publish_bundled;
        // Issue 12.2: a key file of the test's own, and checkpoints soon after each commit.
        let keys = tempfile::tempdir().unwrap();
        config.audit_key = Some(keys.path().join("audit.key"));
        config.checkpoints = CheckpointPolicy { events: 1, interval: Duration::from_millis(200) };
        let server = Server::start(config).await.unwrap();
        let admin = server.admin_token.clone().expect("an admin token on first start");
        let base = format!("http://{}", server.addr);
        Env { server, backend, keys, client: reqwest::Client::new(), base, admin }
    }

    pub(crate) async fn sqlite(publish_bundled: bool) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("civicflow.db")).await.unwrap();
        Env::start(Arc::new(store.clone()), Backend::Sqlite { store, _dir: dir }, publish_bundled).await
    }

    /// A server on a fresh PostgreSQL schema, or `None` (after a SKIP line) when unreachable
    /// outside CI.
    pub(crate) async fn postgres(test: &str) -> Option<Env> {
        Env::postgres_with(test, false).await
    }

    /// [`Env::postgres`], with the bundled policies published when `publish_bundled`.
    pub(crate) async fn postgres_with(test: &str, publish_bundled: bool) -> Option<Env> {
        let crate::pg::Schema { admin, name: schema, options } = crate::pg::fresh_schema("http", "http", test).await?;
        let store = PgStore::connect_with(options, 8).await.unwrap();
        Some(Env::start(Arc::new(store.clone()), Backend::Postgres { store, admin, schema }, publish_bundled).await)
    }

    pub(crate) async fn finish(self) {
        self.server.stop().await;
        match self.backend {
            Backend::Sqlite { store, _dir } => store.close().await,
            Backend::Postgres { store, admin, schema } => {
                store.close().await;
                sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&admin).await.unwrap();
                admin.close().await;
            }
        }
    }

    pub(crate) async fn token(&self, name: &str, office: &str, roles: &[&str]) -> String {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        create_token(self.server.state.store.as_ref(), name, office, &roles).await.unwrap()
    }

    async fn send(&self, method: Method, path: &str, token: Option<&str>, body: Body<'_>, key: Option<&str>) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request = match body {
            Body::None => request,
            Body::Json(v) => request.json(&v),
            Body::Text(s) => request.header("content-type", "text/plain").body(s.to_string()),
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply { status, body, headers }
    }

    /// Sends `POST /v1/policies` declaring a body of `length` bytes but writing none of it,
    /// and reads the answer the server gives from the headers alone.
    pub(crate) async fn declare_body_of(&self, length: usize) -> Reply {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.server.addr).await.unwrap();
        let head = format!(
            "POST /v1/policies HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\n\
             content-type: text/plain\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n",
            self.server.addr, self.admin
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await.unwrap().unwrap();
        let raw = String::from_utf8(raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let code: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        for line in head.lines().skip(1) {
            let (name, value) = line.split_once(':').unwrap();
            headers.insert(
                reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                value.trim().parse().unwrap(),
            );
        }
        let status = StatusCode::from_u16(code).unwrap();
        Reply { status, body: serde_json::from_str(body).unwrap_or(Value::String(body.to_string())), headers }
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(Method::GET, path, Some(token), Body::None, None).await
    }

    pub(crate) async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(token), Body::Json(body), None).await
    }

    pub(crate) async fn post_text(&self, path: &str, token: &str, body: &str) -> Reply {
        self.send(Method::POST, path, Some(token), Body::Text(body), None).await
    }

    pub(crate) async fn act(&self, instance: &str, step: &str, token: &str, body: Value) -> Reply {
        self.post(&action_path(instance, step), token, body).await
    }

    /// The number of events in an instance's history.
    pub(crate) async fn history_len(&self, instance: &str) -> usize {
        let r = self.get(&format!("/v1/instances/{instance}/history"), &self.admin).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["events"].as_array().unwrap().len()
    }

    pub(crate) async fn step(&self, instance: &str, step: &str) -> Value {
        let r = self.get(&format!("/v1/instances/{instance}"), &self.admin).await;
        step_of(&r.body, step)
    }

    pub(crate) async fn advance_to(&self, at: &str) -> Value {
        let r = self.post("/v1/admin/clock", &self.admin.clone(), json!({ "advance_to": at })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }

    /// Changes an event's payload behind the store's back (disabling the append-only guard).
    pub(crate) async fn tamper(&self, instance: &str, seq: i64) {
        match &self.backend {
            Backend::Sqlite { store, .. } => {
                let pool = store.writer_pool();
                sqlx::query("DROP TRIGGER events_no_update").execute(pool).await.unwrap();
                let done = sqlx::query(
                    "UPDATE events SET payload = json_set(payload, '$.changed', 1) WHERE instance = ? AND seq = ?",
                )
                .bind(instance)
                .bind(seq)
                .execute(pool)
                .await
                .unwrap();
                assert_eq!(done.rows_affected(), 1);
            }
            Backend::Postgres { store, .. } => {
                let pool = store.pool();
                sqlx::query("ALTER TABLE events DISABLE TRIGGER events_append_only").execute(pool).await.unwrap();
                let done = sqlx::query(
                    "UPDATE events SET payload = payload || '{\"changed\": 1}'::jsonb WHERE instance = $1 AND seq = $2",
                )
                .bind(instance)
                .bind(seq)
                .execute(pool)
                .await
                .unwrap();
                assert_eq!(done.rows_affected(), 1);
            }
        }
    }
}

enum Body<'a> {
    None,
    Json(Value),
    Text(&'a str),
}

/// Percent-encodes a path segment (a step id holds `/` and Chinese).
fn enc(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn action_path(instance: &str, step: &str) -> String {
    format!("/v1/instances/{instance}/steps/{}/actions", enc(step))
}

pub(crate) fn step_of(view: &Value, step: &str) -> Value {
    view["steps"].as_array().unwrap().iter().find(|s| s["id"] == step).cloned().unwrap_or(Value::Null)
}

fn vote(present: u64, cast: u64, tallies: &[(&str, u64)]) -> Value {
    let tallies: Vec<Value> = tallies.iter().map(|(c, v)| json!({ "candidate": c, "votes": v })).collect();
    json!({ "action": "enter_vote", "data": { "present": present, "cast": cast, "invalid": 0, "tallies": tallies } })
}

pub(crate) fn assert_problem(r: &Reply, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/problem+json", "{}", r.body);
    assert_eq!(r.body["code"], code, "{}", r.body);
    assert_eq!(r.body["status"], status.as_u16());
    assert!(r.body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{}", r.body);
}

// ---- the election ----

async fn election(env: Env) {
    let admin = env.admin.clone();
    // Principals of three offices; the street's has two roles (the step picks the one it names).
    let street = env.token("王主任", "街道办事处", &["街道党工委", "街道选举领导小组"]).await;
    let community = env.token("李书记", "东湖社区", &["社区党组织", "社区居民选举委员会"]).await;
    let bureau = env.token("赵科长", "区民政局", &["区民政局"]).await;

    // Publish: 201, then the same text is 200 with nothing new; a policy with an error is 422.
    let published = env.send(Method::POST, "/v1/policies", Some(&admin), Body::Text(DRILL), None).await;
    assert_eq!(published.status, StatusCode::CREATED, "{}", published.body);
    assert_eq!(published.body["name"], "换届演练");
    assert_eq!(published.body["version"], "e2e.1");
    assert_eq!(published.body["created"], true);
    let again = env.send(Method::POST, "/v1/policies", Some(&admin), Body::Text(DRILL), None).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["created"], false);
    assert_eq!(again.body["hash"], published.body["hash"]);
    let broken = env
        .send(Method::POST, "/v1/policies", Some(&admin), Body::Text("policy x { step a: task { by 无 } }"), None)
        .await;
    assert_problem(&broken, StatusCode::UNPROCESSABLE_ENTITY, "POLICY_INVALID");
    assert!(broken.body["diagnostics"][0]["code"].as_str().is_some_and(|c| c.starts_with('E')), "{}", broken.body);
    // A notice template that would overflow the server's stack on every view is refused when
    // published (issue 9: it used to be accepted and abort the process), and the server answers on.
    for (template, code) in [
        (r#"{{#*inline "p"}}{{> p}}{{/inline}}{{> p}}"#.to_string(), "E0124"),
        (format!("{}x{}", "{{#if a}}".repeat(2000), "{{/if}}".repeat(2000)), "E0125"),
    ] {
        let source = format!(
            "policy 公示攻击 {{\n  role 办事处\n  template 公告 \"{}\"\n  step 公布: publicity {{ by 办事处 min 3 days template 公告 }}\n}}",
            template.replace('"', "\\\"")
        );
        let refused = env.send(Method::POST, "/v1/policies", Some(&admin), Body::Text(&source), None).await;
        assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY, "POLICY_INVALID");
        assert_eq!(refused.body["diagnostics"][0]["code"], code, "{}", refused.body);
    }
    assert_eq!(env.get("/healthz", &admin).await.status, StatusCode::OK);
    // Publishing needs the admin role.
    let not_admin = env.send(Method::POST, "/v1/policies", Some(&street), Body::Text(DRILL), None).await;
    assert_problem(&not_admin, StatusCode::FORBIDDEN, "ADMIN_REQUIRED");
    let versions = env.get(&format!("/v1/policies/{}", enc("换届演练")), &street).await;
    assert_eq!(versions.body["versions"].as_array().unwrap().len(), 1);
    let graph = env.get(&format!("/v1/policies/{}/graph?format=mermaid", enc("换届演练")), &street).await;
    assert_eq!(graph.status, StatusCode::OK);
    assert!(graph.body.as_str().unwrap().contains("党员大会选举"));

    // Start, with an idempotency key; the same request again is the first result.
    let params = json!({ "党员人数": 100, "党组织席位": 7, "居委会席位": 1, "登记选民数": 500 });
    let start = json!({ "policy": "换届演练", "params": params, "id": "east-lake-2012" });
    let started =
        env.send(Method::POST, "/v1/instances", Some(&street), Body::Json(start.clone()), Some("start-1")).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let id = started.body["instance"].as_str().unwrap().to_string();
    assert_eq!(id, "east-lake-2012");
    assert_eq!(started.body["replayed"], false);
    let len = env.history_len(&id).await;
    let replay =
        env.send(Method::POST, "/v1/instances", Some(&street), Body::Json(start.clone()), Some("start-1")).await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.body["replayed"], true);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.body["events"], started.body["events"]);
    assert_eq!(env.history_len(&id).await, len, "a replay records nothing");
    // The same key with another body: 422, nothing recorded (no second instance).
    let other = json!({ "policy": "换届演练", "params": params, "id": "west-lake-2012" });
    let reused = env.send(Method::POST, "/v1/instances", Some(&street), Body::Json(other), Some("start-1")).await;
    assert_problem(&reused, StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED");
    let listed = env.get("/v1/instances", &admin).await;
    assert_eq!(listed.body["total"], 1, "{}", listed.body);

    // 401: no token, a bad token; nothing recorded.
    let no_token =
        env.send(Method::POST, &action_path(&id, PLAN), None, Body::Json(json!({ "action": "complete" })), None).await;
    assert_problem(&no_token, StatusCode::UNAUTHORIZED, "AUTH_MISSING");
    assert_eq!(no_token.headers["www-authenticate"], "Bearer");
    let bad = env.act(&id, PLAN, "cf_not-a-token", json!({ "action": "complete" })).await;
    assert_problem(&bad, StatusCode::UNAUTHORIZED, "AUTH_INVALID");
    // 403: the community may not make the street's plan (F006); a role the principal lacks.
    let wrong_role =
        env.act(&id, PLAN, &community, json!({ "action": "submit_form", "data": { "方案": "社区自拟" } })).await;
    assert_problem(&wrong_role, StatusCode::FORBIDDEN, "F006");
    let not_held = env
        .act(
            &id,
            PLAN,
            &community,
            json!({ "action": "submit_form", "data": { "方案": "x" }, "role": "街道选举领导小组" }),
        )
        .await;
    assert_problem(&not_held, StatusCode::FORBIDDEN, "ROLE_NOT_HELD");
    // Bad input is 422 naming what is bad, on both stores alike (issue 9: a NUL character was a
    // 500, or a false "retry" 503, on PostgreSQL; a too large `after` a 500); nothing recorded.
    let len = env.history_len(&id).await;
    let nul = env.act(&id, PLAN, &street, json!({ "action": "submit_form", "data": { "方案": "甲\u{0}乙" } })).await;
    assert_problem(&nul, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST");
    assert_eq!(nul.body["detail"], "`/data/方案` contains a NUL character (U+0000)");
    let history = format!("/v1/instances/{id}/history");
    for (path, detail) in [
        (format!("/v1/instances/{id}%00/history"), "the path contains a NUL character (U+0000)".to_string()),
        (format!("{history}?after=%00"), "query parameter `after` contains a NUL character (U+0000)".into()),
        (format!("{history}?after=9223372036854775808"), "`after` is 0 to 9223372036854775807".into()),
    ] {
        let refused = env.get(&path, &admin).await;
        assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST");
        assert_eq!(refused.body["detail"], detail.as_str(), "{path}");
    }
    let last = env.get(&format!("{history}?after=9223372036854775807"), &admin).await;
    assert_eq!(last.status, StatusCode::OK, "{}", last.body);
    assert_eq!(last.body["events"], json!([]));
    let nul_policy =
        env.send(Method::POST, "/v1/policies", Some(&admin), Body::Text("policy x {\n  role a\u{0}\n}"), None).await;
    assert_problem(&nul_policy, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST");
    assert_eq!(nul_policy.body["detail"], "the body contains a NUL character (U+0000) on line 2");
    assert_eq!(env.history_len(&id).await, len, "nothing recorded");
    // 409 (R2.1 order): the party vote is not open while the preparation phase runs; the problem
    // carries the current state.
    let early = env.act(&id, PARTY_VOTE, &community, vote(81, 81, &[("甲", 81)])).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.body);
    assert!(early.body["code"] == "F005" || early.body["code"] == "F008", "{}", early.body);
    assert_eq!(step_of(&early.body["state"], PARTY_VOTE)["status"], "waiting", "{}", early.body);
    // 422: a form field of the wrong type (F012), an unknown action.
    let wrong_type = env.act(&id, PLAN, &street, json!({ "action": "submit_form", "data": { "方案": 3 } })).await;
    assert_problem(&wrong_type, StatusCode::UNPROCESSABLE_ENTITY, "F012");
    let unknown = env.act(&id, PLAN, &street, json!({ "action": "sign" })).await;
    assert_problem(&unknown, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST");
    assert_eq!(env.history_len(&id).await, len, "refusals record nothing");

    // R2.4: an instance whose seats break the rule: the form is refused with the rule's words.
    let too_many = json!({ "policy": "换届演练", "id": "west-lake-2012",
        "params": { "党员人数": 100, "党组织席位": 10, "居委会席位": 1, "登记选民数": 500 } });
    let west = env.post("/v1/instances", &street, too_many).await;
    assert_eq!(west.status, StatusCode::CREATED, "{}", west.body);
    let west_len = env.history_len("west-lake-2012").await;
    let r24 =
        env.act("west-lake-2012", PLAN, &street, json!({ "action": "submit_form", "data": { "方案": "十席" } })).await;
    assert_problem(&r24, StatusCode::UNPROCESSABLE_ENTITY, "F013");
    assert_eq!(r24.body["rule"], "R2.4", "{}", r24.body);
    assert!(r24.body["detail"].as_str().unwrap().contains("党组织委员职数不在职数范围内"));
    assert_eq!(env.history_len("west-lake-2012").await, west_len);

    // The inbox: the street sees its plan, soonest due first; the community sees nothing yet.
    let inbox = env.get("/v1/inbox", &street).await;
    let steps: Vec<&str> = inbox.body.as_array().unwrap().iter().map(|i| i["step"].as_str().unwrap()).collect();
    assert_eq!(steps, [PLAN, PLAN]);
    assert_eq!(inbox.body[0]["role"], "街道选举领导小组");
    assert_eq!(inbox.headers["x-total-count"], "2");
    assert!(inbox.headers.get("link").is_none(), "one page holds both");
    assert_eq!(env.get("/v1/inbox", &community).await.body, json!([]));
    // Issue 10.6: a page at a time, with the total and the links to the pages beside it.
    let first = env.get("/v1/inbox?page_size=1", &street).await;
    assert_eq!((first.body.as_array().unwrap().len(), &first.headers["x-total-count"]), (1, &"2".parse().unwrap()));
    assert_eq!(first.body[0], inbox.body[0]);
    // The next page by the place the first ended at (a cursor), as fast deep in the list.
    let next_of = |r: &Reply| {
        let link = r.headers["link"].to_str().unwrap().to_string();
        let next = link.strip_prefix('<').and_then(|l| l.strip_suffix(">; rel=\"next\"")).map(str::to_string);
        next.unwrap_or_else(|| panic!("no next link alone: {link}"))
    };
    let next = next_of(&first);
    assert!(next.starts_with("/v1/inbox?after=") && next.ends_with("&page_size=1"), "{next}");
    let after_first = env.get(&next, &street).await;
    assert_eq!(after_first.body, json!([inbox.body[1].clone()]));
    assert_eq!(after_first.headers["x-total-count"], "2");
    // A full page after a cursor may have more: its link leads to an empty page without one.
    let end = env.get(&next_of(&after_first), &street).await;
    assert_eq!((end.body.clone(), end.headers.get("link")), (json!([]), None));
    let second = env.get("/v1/inbox?page=2&page_size=1", &street).await;
    assert_eq!(second.body, json!([inbox.body[1].clone()]));
    assert_eq!(second.headers["link"], "</v1/inbox?page=1&page_size=1>; rel=\"prev\"");
    let both = env.get(&format!("{next}&page=2"), &street).await;
    assert_problem(&both, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST");
    assert_eq!(both.body["detail"], "give `page` or `after`, not both");
    let forged = env.get("/v1/inbox?after=WzEsImEiXQ", &street).await;
    assert_problem(&forged, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST");
    assert_problem(&env.get("/v1/inbox?page=0", &street).await, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST");
    assert_problem(
        &env.get("/v1/inbox?page_size=1001", &street).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_REQUEST",
    );

    // The live stream, opened before what follows.
    let mut stream =
        env.client.get(format!("{}/v1/events?instance={id}", env.base)).bearer_auth(&street).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));

    // The plan's deadline (3 working days from Wed 03-21: end of Mon 03-26) passes: the timer
    // service records the breach and escalates it, at the deadline.
    let plan = env.step(&id, PLAN).await;
    assert_eq!(plan["due_at"], "2012-03-26T16:00:00Z", "{plan}");
    let ics = env.get(&format!("/v1/instances/{id}/calendar.ics"), &street).await;
    let ics = ics.body.as_str().unwrap().to_string();
    assert!(ics.starts_with("BEGIN:VCALENDAR\r\n"), "{ics}");
    assert!(ics.contains("BEGIN:VEVENT\r\n"), "{ics}");
    assert!(ics.contains("DTSTART:20120326T160000Z\r\n"), "{ics}");
    assert!(ics.contains("DTSTAMP:20120321T010000Z\r\n"), "{ics}");
    assert!(ics.contains(&format!("UID:{id}/")), "{ics}");
    let moved = env.advance_to("2012-03-27T09:00:00+08:00").await;
    assert!(moved["fired"].as_u64().unwrap() >= 1, "{moved}");
    let plan = env.step(&id, PLAN).await;
    assert_eq!(plan["overdue"], true, "{plan}");
    assert_eq!(plan["escalated_to"], json!(["街道党工委"]), "{plan}");
    let history = env.get(&format!("/v1/instances/{id}/history"), &street).await;
    let escalated =
        history.body["events"].as_array().unwrap().iter().find(|e| e["kind"] == "escalated").cloned().unwrap();
    assert_eq!(escalated["at"], "2012-03-26T16:00:00Z");
    assert_eq!(escalated["actor"], "timer");
    // A clock never goes back.
    let back = env.post("/v1/admin/clock", &admin, json!({ "advance_to": "2012-03-22T09:00:00+08:00" })).await;
    assert_problem(&back, StatusCode::UNPROCESSABLE_ENTITY, "CLOCK_BACKWARDS");

    // The street acts in the role the step names (it holds two), with an idempotency key.
    let plan_body = json!({ "action": "submit_form", "data": { "方案": "七席差额" } });
    let done = env
        .send(Method::POST, &action_path(&id, PLAN), Some(&street), Body::Json(plan_body.clone()), Some("plan-1"))
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let recorded = done.body["events"].as_array().unwrap().iter().find(|e| e["kind"] == "form_recorded").cloned();
    let recorded = recorded.unwrap_or_else(|| panic!("no form_recorded in {}", done.body));
    assert_eq!((recorded["actor"].as_str(), recorded["role"].as_str()), (Some("王主任"), Some("街道选举领导小组")));
    let len = env.history_len(&id).await;
    let again =
        env.send(Method::POST, &action_path(&id, PLAN), Some(&street), Body::Json(plan_body), Some("plan-1")).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["replayed"], true);
    assert_eq!(again.body["events"], done.body["events"]);
    assert_eq!(env.history_len(&id).await, len);
    // A stale action: the plan is done; 409 with the current state.
    let stale = env.act(&id, PLAN, &street, json!({ "action": "submit_form", "data": { "方案": "再改" } })).await;
    assert_problem(&stale, StatusCode::CONFLICT, "F005");
    assert_eq!(step_of(&stale.body["state"], PLAN)["status"], "done", "{}", stale.body);
    assert_eq!(env.history_len(&id).await, len);

    // What was committed reached the stream.
    let mut seen = String::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains("event: form_recorded") {
            match stream.chunk().await.unwrap() {
                Some(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                None => break,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no form_recorded event on the stream: {seen}");
    assert!(seen.contains(&format!("id: {id}/")), "{seen}");
    drop(stream);

    // 正式选举 opens on 04-01; Monday 04-02 09:00.
    env.advance_to("2012-04-02T09:00:00+08:00").await;
    let before_vote = t("2012-04-02T09:00:00+08:00");
    assert_eq!(env.step(&id, PARTY_VOTE).await["status"], "open");
    // R2.1: the residents' committee waits for the party organisation.
    assert_eq!(env.step(&id, RESIDENTS_VOTE).await["status"], "waiting");
    let r21 = env.act(&id, RESIDENTS_VOTE, &community, vote(300, 300, &[("甲", 300)])).await;
    assert_problem(&r21, StatusCode::CONFLICT, "F005");

    // R2.14: 80 of 100 present is not a quorum (422, nothing recorded); 81 is.
    let len = env.history_len(&id).await;
    let r214 = env.act(&id, PARTY_VOTE, &community, vote(80, 80, &[("甲", 80)])).await;
    assert_problem(&r214, StatusCode::UNPROCESSABLE_ENTITY, "F014");
    assert_eq!(env.history_len(&id).await, len);
    env.advance_to("2012-04-02T10:00:00+08:00").await;
    let ok = env.act(&id, PARTY_VOTE, &community, vote(81, 81, &[("甲", 81)])).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let party = env.step(&id, PARTY_VOTE).await;
    assert_eq!(party["status"], "done", "{party}");
    assert_eq!(party["vote"]["elected"], json!(["甲"]), "{party}");

    // R2.18: a filing cannot be rejected (422, F010) — it is filed; the approval can reject, and
    // here approves.
    let no_veto = env.act(&id, PARTY_FILING, &street, json!({ "action": "reject", "comment": "不同意" })).await;
    assert_problem(&no_veto, StatusCode::UNPROCESSABLE_ENTITY, "F010");
    let filed = env.act(&id, PARTY_FILING, &street, json!({ "action": "file" })).await;
    assert_eq!(filed.status, StatusCode::OK, "{}", filed.body);
    assert_eq!(env.step(&id, PARTY_FILING).await["outcome"], "filed");
    assert_eq!(env.step(&id, RESIDENTS_VOTE).await["status"], "waiting", "the approval is still awaited");
    let approved = env.act(&id, PARTY_APPROVAL, &street, json!({ "action": "approve", "comment": "同意" })).await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    assert_eq!(env.step(&id, PARTY_APPROVAL).await["outcome"], "approved");

    // R2.1: now the residents' committee. R2.16: 250 of 500 voters casting is not valid; 251 is,
    // and a candidate needs more than half of the ballots cast.
    assert_eq!(env.step(&id, RESIDENTS_VOTE).await["status"], "open");
    let r216 = env.act(&id, RESIDENTS_VOTE, &community, vote(250, 250, &[("甲", 200), ("乙", 50)])).await;
    assert_problem(&r216, StatusCode::UNPROCESSABLE_ENTITY, "F014");
    let valid = env.act(&id, RESIDENTS_VOTE, &community, vote(251, 251, &[("甲", 126), ("乙", 125)])).await;
    assert_eq!(valid.status, StatusCode::OK, "{}", valid.body);
    assert_eq!(env.step(&id, RESIDENTS_VOTE).await["vote"]["elected"], json!(["甲"]));
    // R2.18: filed with the district bureau, by the bureau.
    let by_street = env.act(&id, RESIDENTS_FILING, &street, json!({ "action": "file" })).await;
    assert_problem(&by_street, StatusCode::FORBIDDEN, "F006");
    let filed = env.act(&id, RESIDENTS_FILING, &bureau, json!({ "action": "file" })).await;
    assert_eq!(filed.status, StatusCode::OK, "{}", filed.body);
    // R2.1 (3): the oversight committee last.
    let last = env.act(&id, OVERSIGHT, &community, json!({ "action": "complete", "comment": "选出7人" })).await;
    assert_eq!(last.status, StatusCode::OK, "{}", last.body);
    let end = env.get(&format!("/v1/instances/{id}"), &bureau).await;
    assert_eq!(end.body["status"], "completed", "{}", end.body);

    // Listing with filters.
    let running = env.get("/v1/instances?status=running", &admin).await;
    assert_eq!(running.body["total"], 1);
    assert_eq!(running.body["items"][0]["id"], "west-lake-2012");
    let overdue = env.get("/v1/instances?overdue=true", &admin).await;
    assert_eq!(overdue.body["items"][0]["id"], "west-lake-2012", "{}", overdue.body);
    let for_office = env.get(&format!("/v1/instances?office={}", enc("社区党组织")), &admin).await;
    assert_eq!(for_office.body["total"], 0, "{}", for_office.body);

    // as_of: before the vote the party vote was open and the instance running.
    let as_of = before_vote.to_rfc3339().replace('+', "%2B");
    let then = env.get(&format!("/v1/instances/{id}?as_of={as_of}"), &bureau).await;
    assert_eq!(then.status, StatusCode::OK, "{}", then.body);
    assert_eq!(then.body["status"], "running");
    assert_eq!(step_of(&then.body, PARTY_VOTE)["status"], "open");
    assert_eq!(step_of(&then.body, PARTY_APPROVAL)["status"], "waiting");
    let bad_as_of = env.get(&format!("/v1/instances/{id}?as_of=yesterday"), &bureau).await;
    assert_problem(&bad_as_of, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST");

    // The history verifies; a row changed in the database is found and named.
    let verified = env.get(&format!("/v1/instances/{id}/history/verify"), &bureau).await;
    assert_eq!(verified.body["ok"], true, "{}", verified.body);
    let n = env.history_len(&id).await;
    assert_eq!(verified.body["events"], n as u64);
    env.tamper(&id, 3).await;
    let broken = env.get(&format!("/v1/instances/{id}/history/verify"), &bureau).await;
    assert_eq!(broken.status, StatusCode::OK);
    assert_eq!(broken.body["ok"], false, "{}", broken.body);
    assert_eq!(broken.body["first_bad_seq"], 3, "{}", broken.body);
    assert_eq!(broken.body["field"], "hash");

    // Every refusal was counted by code.
    let metrics = env.send(Method::GET, "/metrics", None, Body::None, None).await;
    let text = metrics.body.as_str().unwrap();
    for code in ["F006", "F014", "F010", "AUTH_MISSING", "IDEMPOTENCY_KEY_REUSED"] {
        assert!(text.contains(&format!("civicflow_refusals_total{{code=\"{code}\"}}")), "{code} missing:\n{text}");
    }
    assert!(text.contains("civicflow_timer_lag_seconds_count"), "{text}");
    assert!(text.contains("civicflow_store_seconds_bucket{op=\"commit_many\""), "{text}");
    // The election's commands found their instance in the runtime's cache (issue 10.1).
    let hits = text
        .lines()
        .find_map(|l| l.strip_prefix("civicflow_instance_cache_lookups_total{result=\"hit\"} "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(hits.is_some_and(|h| h > 0.0), "{text}");
    assert!(text.contains("\ncivicflow_instance_cache_entries "), "{text}");

    let addr = env.server.addr;
    env.finish().await;
    // Stopped: the port no longer answers.
    assert!(reqwest::Client::new().get(format!("http://{addr}/healthz")).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_through_http_on_sqlite() {
    election(Env::sqlite(false).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_through_http_on_postgres() {
    if let Some(env) = Env::postgres("election").await {
        election(env).await;
    }
}

/// First start: bundled policies published, one admin token; `/healthz`, `/openapi.json` (every
/// endpoint of DESIGN.md's table, with the problem schema), problems for unknown routes, wrong
/// methods and oversized bodies, and the simulated clock's admin guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_openapi_health_and_problems() {
    let env = Env::sqlite(true).await;
    assert_eq!(
        env.server.published,
        [
            "reform_pilot",
            "election",
            "community_access",
            "residents_demand",
            "property_service",
            "community_assessment",
            "stability_assessment",
            "committee_standardisation"
        ]
    );
    assert!(env.admin.starts_with("cf_") && env.admin.len() == 67);
    let policies = env.get("/v1/policies", &env.admin).await;
    assert_eq!(policies.body.as_array().unwrap().len(), 8);

    let health = env.send(Method::GET, "/healthz", None, Body::None, None).await;
    assert_eq!((health.status, health.body.clone()), (StatusCode::OK, json!({ "status": "ok" })));

    let doc = env.send(Method::GET, "/openapi.json", None, Body::None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let paths = doc.body["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/policies", "post"),
        ("/v1/policies", "get"),
        ("/v1/policies/{name}", "get"),
        ("/v1/policies/{name}/graph", "get"),
        ("/v1/instances", "post"),
        ("/v1/instances", "get"),
        ("/v1/instances/{id}", "get"),
        ("/v1/instances/{id}/steps/{step}/actions", "post"),
        ("/v1/inbox", "get"),
        ("/v1/instances/{id}/history", "get"),
        ("/v1/instances/{id}/history/verify", "get"),
        ("/v1/instances/{id}/calendar.ics", "get"),
        ("/v1/events", "get"),
        ("/v1/admin/clock", "post"),
        ("/v1/calendars", "get"),
        ("/v1/admin/calendars", "post"),
        ("/healthz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} is not in /openapi.json");
    }
    let act = &paths["/v1/instances/{id}/steps/{step}/actions"]["post"]["responses"];
    for status in ["200", "401", "403", "404", "409", "422"] {
        assert!(act.get(status).is_some(), "the action's {status} is not documented");
    }
    assert_eq!(act["409"]["content"]["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem");
    assert!(doc.body["components"]["securitySchemes"]["bearer"].is_object());

    let missing = env.get("/v1/nothing-here", &env.admin).await;
    assert_problem(&missing, StatusCode::NOT_FOUND, "NOT_FOUND");
    let wrong_method = env.send(Method::DELETE, "/v1/policies", Some(&env.admin), Body::None, None).await;
    assert_problem(&wrong_method, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
    // A body over the limit is refused from its Content-Length, before it is read: the request
    // is written by hand without its body, since a client still writing 2 MiB when the server
    // answers and closes may see a broken pipe instead of the answer (it did, once, in CI).
    let too_large = env.declare_body_of(2 * 1024 * 1024).await;
    assert_problem(&too_large, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE");
    let not_json = env.send(Method::POST, "/v1/instances", Some(&env.admin), Body::Text("{not json"), Some("k")).await;
    assert_problem(&not_json, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST");

    // The clock needs the admin role.
    let clerk = env.token("clerk", "街道办事处", &["街道党工委"]).await;
    let refused = env.post("/v1/admin/clock", &clerk, json!({ "advance_to": "2013-01-01T00:00:00Z" })).await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "ADMIN_REQUIRED");
    // Idempotent clock moves: the same key and body replay; another body is 422.
    let key = Some("clock-1");
    let body = json!({ "advance_to": "2012-03-22T09:00:00+08:00" });
    let first = env.send(Method::POST, "/v1/admin/clock", Some(&env.admin), Body::Json(body.clone()), key).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let replay = env.send(Method::POST, "/v1/admin/clock", Some(&env.admin), Body::Json(body), key).await;
    assert_eq!((replay.status, &replay.body), (StatusCode::OK, &first.body));
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    let other = json!({ "advance_to": "2012-03-23T09:00:00+08:00" });
    let reused = env.send(Method::POST, "/v1/admin/clock", Some(&env.admin), Body::Json(other), key).await;
    assert_problem(&reused, StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED");
    env.finish().await;
}

/// Instance ids: letters (Chinese included), digits, `-`, `_`, `.`, at most 64 characters; any
/// other id is 422 with the rule and nothing is started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_ids_keep_to_a_safe_alphabet() {
    let env = Env::sqlite(true).await;
    let admin = env.admin.clone();
    let before = env.get("/v1/instances", &admin).await.body["total"].clone();
    for (id, why) in
        [("../x", "it starts with `.`"), ("甲 乙", "it contains ` `"), ("a\u{202e}b", "it contains `\\u{202e}`")]
    {
        let r = env.post("/v1/instances", &admin, json!({ "policy": "reform_pilot", "id": id })).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST");
        assert_eq!(
            r.body["detail"],
            format!("an instance id has 1 to 64 characters: letters (Chinese included) and digits, and `-`, `_` or `.` after the first; {why}")
        );
    }
    let long = "街".repeat(65);
    let r = env.post("/v1/instances", &admin, json!({ "policy": "reform_pilot", "id": long })).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_REQUEST");
    assert_eq!(env.get("/v1/instances", &admin).await.body["total"], before, "nothing started");
    let ok = env.post("/v1/instances", &admin, json!({ "policy": "reform_pilot", "id": "2008.试点_东湖-1" })).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    assert_eq!(ok.body["instance"], "2008.试点_东湖-1");
    env.finish().await;
}

// ---- issue 8: escalations reach the leaders; passing a matter on (R3.5) ----

/// The events of an instance after the first `skip`, as (kind, node, at).
pub(crate) async fn events_after(env: &Env, instance: &str, skip: usize) -> Vec<(String, String, String)> {
    let r = env.get(&format!("/v1/instances/{instance}/history"), &env.admin).await;
    r.body["events"].as_array().unwrap()[skip..]
        .iter()
        .map(|e| {
            let node = e["payload"]["node"].as_str().or(e["payload"]["from"].as_str()).unwrap_or("").to_string();
            (e["kind"].as_str().unwrap().to_string(), node, e["at"].as_str().unwrap().to_string())
        })
        .collect()
}

/// The bundled 居民诉求 through HTTP: the department lets 首办受理 lapse; the leaders it is
/// escalated to find it in their inbox marked escalated with `urge` as what they may do, and urge
/// (another office is refused, F031, nothing recorded). Then the department passes the matter
/// back (推诿, R3.5): recorded and escalated at that instant, and the owner's limit is not reset.
async fn r3_5_escalated_steps_reach_the_leaders_inbox(env: Env) {
    // R6.1: 社区居委会 is bound to the community the demand concerns (社区名称).
    let community = env.token("王主任", "舜耕社区", &["社区居委会"]).await;
    let office = env.token("李四", "区民生办", &["民生办"]).await;
    let dept = env.token("赵科长", "市政公用局", &["首办部门"]).await;
    let leader = env.token("钱局长", "市政公用局", &["部门主要领导"]).await;

    let start = json!({ "policy": "residents_demand", "params": { "社区名称": "舜耕社区" }, "id": "demand-1" });
    let started = env.post("/v1/instances", &community, start).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let id = "demand-1";
    let form = json!({ "action": "submit_form", "data": {
        "诉求人": "张三", "联系电话": "13800000000", "诉求内容": "小区路灯损坏", "受理日期": "2012-03-21" } });
    assert_eq!(env.act(id, "诉求受理", &community, form).await.status, StatusCode::OK);
    let r = env
        .act(id, "社区研判", &community, json!({ "action": "reject", "data": { "reason": "需市政部门维修" } }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let assign = json!({ "action": "submit_form", "data": { "首办部门名称": "市政公用局", "督办人": "李四" } });
    assert_eq!(env.act(id, "民生办分流", &office, assign.clone()).await.status, StatusCode::OK);
    let due1 = env.step(id, "首办受理").await["due_at"].as_str().unwrap().to_string();
    assert_eq!(due1, "2012-03-22T16:00:00Z", "one working day: by the end of Thursday 03-22");
    // Nothing escalated yet: the leader's inbox is empty.
    assert_eq!(env.get("/v1/inbox", &leader).await.body, json!([]));

    // The day lapses: the breach is escalated to the leaders at its instant.
    env.advance_to("2012-03-23T09:00:00+08:00").await;
    let inbox = env.get("/v1/inbox", &leader).await;
    assert_eq!(inbox.status, StatusCode::OK, "{}", inbox.body);
    let items = inbox.body.as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", inbox.body);
    assert_eq!(items[0]["instance"], id);
    assert_eq!(items[0]["step"], "首办受理");
    assert_eq!(items[0]["role"], "部门主要领导");
    assert_eq!(items[0]["escalated"], true);
    assert_eq!(items[0]["overdue"], true);
    assert_eq!(items[0]["actions"], json!(["urge"]));
    // The department sees its own work, not marked escalated.
    let own = env.get("/v1/inbox", &dept).await;
    let own = own.body.as_array().unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0]["escalated"], false);
    assert_eq!(own[0]["actions"], json!(["submit_form", "complete"]));
    // Another office may not urge: 403, nothing recorded.
    let len = env.history_len(id).await;
    let urge = json!({ "action": "urge", "comment": "请今天内受理" });
    let refused = env.act(id, "首办受理", &community, urge.clone()).await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "F031");
    assert_eq!(
        refused.body["detail"],
        "role `社区居委会` may not urge step `首办受理`; urging is for `民生办`, `部门主要领导`, `部门分管领导` (named by the policy or escalated to)"
    );
    assert_eq!(env.history_len(id).await, len, "a refused urge records nothing");
    let urged = env.act(id, "首办受理", &leader, urge).await;
    assert_eq!(urged.status, StatusCode::OK, "{}", urged.body);
    assert_eq!(events_after(&env, id, len).await, [("urged".into(), "首办受理".into(), "2012-03-23T01:00:00Z".into())]);

    // R3.5: taken in late; the limit of 首办办结 then passes the matter back (推诿).
    let r = env.act(id, "首办受理", &dept, json!({ "action": "complete", "data": { "report": "已受理" } })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let due2 = env.step(id, "首办办结").await["due_at"].as_str().unwrap().to_string();
    env.advance_to("2012-03-26T10:00:00+08:00").await;
    let len = env.history_len(id).await;
    let back = json!({ "action": "return_to", "data": { "target": "民生办分流", "reason": "不属于本部门职责" } });
    // Only the declared return: the community may not send it back (F030, 403).
    assert_problem(&env.act(id, "首办办结", &community, back.clone()).await, StatusCode::FORBIDDEN, "F030");
    assert_eq!(env.history_len(id).await, len);
    let passed = env.act(id, "首办办结", &dept, back).await;
    assert_eq!(passed.status, StatusCode::OK, "{}", passed.body);
    let now = "2012-03-26T02:00:00Z".to_string();
    let node = "首办办结".to_string();
    assert_eq!(
        events_after(&env, id, len).await,
        [
            ("passed_on".into(), node.clone(), now.clone()),
            ("escalated".into(), node.clone(), now.clone()),
            ("escalated".into(), node.clone(), now.clone()),
            ("notified".into(), node.clone(), now.clone()),
            ("returned".into(), node.clone(), now.clone()),
            ("opened".into(), "民生办分流".into(), now.clone()),
        ]
    );
    // Reassigned and taken in again: the limit is the original one.
    assert_eq!(env.act(id, "民生办分流", &office, assign).await.status, StatusCode::OK);
    let r = env.act(id, "首办受理", &dept, json!({ "action": "complete", "data": { "report": "已受理" } })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(env.step(id, "首办办结").await["due_at"].as_str().unwrap(), due2);
    assert_eq!(due2, "2012-04-16T16:00:00Z", "15 working days from Friday 03-23, around 清明 (04-02 … 04-04)");
    // Issue 11.1 (延期): the livelihood office gives 2 more working days, with a reason; the
    // department may not extend its own limit (F047, 403, nothing recorded).
    let len = env.history_len(id).await;
    let extend = json!({ "action": "extend", "data": { "amount": 2, "reason": "需协调供电部门" } });
    assert_problem(&env.act(id, "首办办结", &dept, extend.clone()).await, StatusCode::FORBIDDEN, "F047");
    assert_eq!(env.history_len(id).await, len);
    let listed = env.get("/v1/inbox", &office).await;
    let own: Vec<&Value> = listed.body.as_array().unwrap().iter().filter(|i| i["step"] == "首办办结").collect();
    assert!(own.is_empty(), "民生办 does not act on it, so it is not in its inbox: {}", listed.body);
    let extended = env.act(id, "首办办结", &office, extend).await;
    assert_eq!(extended.status, StatusCode::OK, "{}", extended.body);
    let due3 = "2012-04-18T16:00:00Z".to_string();
    assert_eq!(env.step(id, "首办办结").await["due_at"], due3.as_str(), "Tuesday 04-17 and Wednesday 04-18");
    let history = env.get(&format!("/v1/instances/{id}/history"), &env.admin).await;
    let last = history.body["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["kind"], &last["actor"], &last["role"], &last["payload"]),
        (
            &json!("extended"),
            &json!("李四"),
            &json!("民生办"),
            &json!({ "event": "extended", "node": "首办办结", "from": due2, "to": due3, "amount": 2, "reason": "需协调供电部门" })
        )
    );
    let too_long = json!({ "action": "extend", "data": { "amount": 9, "reason": "再延" } });
    let refused = env.act(id, "首办办结", &office, too_long).await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY, "F048");
    assert_eq!(
        refused.body["detail"],
        "step `首办办结` may be extended by at most 10 workdays in all; 2 used, 8 left, 9 asked"
    );
    // … and breaches at the extended instant, not the first.
    let len = env.history_len(id).await;
    env.advance_to("2012-04-30T09:00:00+08:00").await;
    let breach: Vec<_> =
        events_after(&env, id, len).await.into_iter().filter(|(k, n, _)| n == "首办办结" && k == "overdue").collect();
    assert_eq!(breach, [("overdue".to_string(), node.clone(), due3.clone())]);
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_5_escalated_steps_reach_the_leaders_inbox_and_passing_on_keeps_the_limit_on_sqlite() {
    r3_5_escalated_steps_reach_the_leaders_inbox(Env::sqlite(true).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_5_escalated_steps_reach_the_leaders_inbox_and_passing_on_keeps_the_limit_on_postgres() {
    if let Some(env) = Env::postgres_with("escalated_inbox", true).await {
        r3_5_escalated_steps_reach_the_leaders_inbox(env).await;
    }
}

// ---- offices (R6.1) ----

/// R6.1: two principals hold 社区居委会, in different communities; only the community the demand
/// concerns may act on it: the other gets 403 with F035 and the bound office's name, and nothing
/// is recorded.
async fn r6_1_another_office_with_the_same_role(env: Env) {
    let admin = env.admin.clone();
    let source = civicflow_policies::get("residents_demand").unwrap().source;
    let published = env.send(Method::POST, "/v1/policies", Some(&admin), Body::Text(source), None).await;
    assert!(published.status.is_success(), "{}", published.body);
    let own = env.token("李主任", "舜耕社区", &["社区居委会"]).await;
    let other = env.token("王主任", "燕山社区", &["社区居委会"]).await;
    let start = json!({ "policy": "residents_demand", "id": "demand-1", "params": { "社区名称": "舜耕社区" } });
    let r = env.post("/v1/instances", &admin, start).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let before = env.history_len("demand-1").await;
    // The step is in the bound community's inbox only.
    let listed = |body: Value| body.as_array().unwrap().iter().any(|i| i["instance"] == "demand-1");
    assert!(listed(env.get("/v1/inbox", &own).await.body));
    assert!(!listed(env.get("/v1/inbox", &other).await.body));
    let data =
        json!({ "诉求人": "张三", "联系电话": "13800000000", "诉求内容": "小区路灯损坏", "受理日期": "2012-03-21" });
    let body = json!({ "action": "submit_form", "data": data });
    let refused = env.act("demand-1", "诉求受理", &other, body.clone()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(refused.body["code"], "F035", "{}", refused.body);
    assert_eq!(
        refused.body["detail"],
        "role `社区居委会` on step `诉求受理` is bound to `舜耕社区` for this instance; `燕山社区` holds the role but may not act on it",
    );
    assert_eq!(env.history_len("demand-1").await, before, "a refusal records nothing");
    let done = env.act("demand-1", "诉求受理", &own, body).await;
    assert!(done.status.is_success(), "{}", done.body);
    assert_eq!(env.step("demand-1", "诉求受理").await["status"], "done");

    // R6.2: the resident's name and phone are redacted for the other community, in the state
    // (now and as of an instant) and in the history, where the hashes stay those stored; the
    // bound community and oversight (纪委) see them.
    let oversight = env.token("赵监督", "街道纪工委", &["纪委"]).await;
    let form_for = |token: String| {
        let env = &env;
        async move { step_of(&env.get("/v1/instances/demand-1", &token).await.body, "诉求受理")["form"].clone() }
    };
    let hidden = form_for(other.clone()).await;
    assert_eq!(hidden["联系电话"], "[个人信息]", "{hidden}");
    assert_eq!(hidden["诉求人"], "[个人信息]");
    assert_eq!(hidden["诉求内容"], "小区路灯损坏");
    assert_eq!(form_for(own.clone()).await["联系电话"], "13800000000");
    assert_eq!(form_for(oversight.clone()).await["联系电话"], "13800000000");
    let as_of = env.get("/v1/instances/demand-1?as_of=2012-03-21T10:00:00%2B08:00", &other).await;
    assert_eq!(step_of(&as_of.body, "诉求受理")["form"]["联系电话"], "[个人信息]", "{}", as_of.body);
    let recorded = |body: &Value| {
        body["events"].as_array().unwrap().iter().find(|e| e["kind"] == "form_recorded").cloned().unwrap()
    };
    let theirs = recorded(&env.get("/v1/instances/demand-1/history", &other).await.body);
    let mine = recorded(&env.get("/v1/instances/demand-1/history", &own).await.body);
    assert_eq!(theirs["payload"]["data"]["联系电话"], json!({ "text": "[个人信息]" }), "{theirs}");
    assert_eq!(mine["payload"]["data"]["联系电话"], json!({ "text": "13800000000" }), "{mine}");
    assert_eq!(theirs["hash"], mine["hash"], "the hash shown is that of the stored event");
    let verified = env.get("/v1/instances/demand-1/history/verify", &other).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    // A 409 carries the instance's state, redacted for the caller too: the stability office
    // (bound to nothing here) acts on its step, which was skipped.
    let stability = env.token("孙主任", "舜耕社区综治办", &["综治维稳办公室"]).await;
    let len = env.history_len("demand-1").await;
    let approve = json!({ "action": "approve", "data": { "风险等级": "低", "评估意见": "无" } });
    let stale = env.act("demand-1", "稳定风险评估", &stability, approve).await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    assert_eq!(stale.body["code"], "F005", "{}", stale.body);
    assert_eq!(step_of(&stale.body["state"], "稳定风险评估")["status"], "skipped", "{}", stale.body);
    let form = &step_of(&stale.body["state"], "诉求受理")["form"];
    assert_eq!(form["联系电话"], "[个人信息]", "{}", stale.body);
    assert_eq!(form["诉求人"], "[个人信息]");
    assert_eq!(form["诉求内容"], "小区路灯损坏");
    assert_eq!(env.history_len("demand-1").await, len, "a refusal records nothing");
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r6_1_another_office_with_the_same_role_is_refused_on_sqlite() {
    r6_1_another_office_with_the_same_role(Env::sqlite(false).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r6_1_another_office_with_the_same_role_is_refused_on_postgres() {
    if let Some(env) = Env::postgres("offices").await {
        r6_1_another_office_with_the_same_role(env).await;
    }
}
