//! The web pages through HTTP (reqwest, cookies handled by hand so the `Secure` flag on a
//! loopback `http://` origin does not matter): sign-in and sessions, CSRF on every POST, the
//! inbox, acting on a step and the refusal message, the instance page, the audit trail with its
//! verification and exports, policies, notices, the English switch, pagination.
//!
//! `harness` is shared with `browser.rs`.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use civicflow::http::auth::create_token;
use civicflow::serve::{Config, Database, Server};
use civicflow_engine::store::postgres::PgStore;
use civicflow_engine::store::sqlite::SqliteStore;
use civicflow_engine::store::Store;

pub mod harness {
    use super::*;

    /// A small procedure with the step kinds the pages act on: an approval, a vote with a
    /// quorum (R2.14: more than 4/5 of the eligible present), a task with a form.
    pub const PAGES_POLICY: &str = r#"
policy 页面演练 {
  title "页面演练"
  version "pages.1"
  param 党员人数: int = 100
  role 街道党工委
  role 社区党组织
  step 资格审查: approval {
    by 街道党工委
    due 5 workdays
  }
  step 党员大会: vote {
    by 社区党组织
    after 资格审查
    seats 3
    eligible 党员人数
    quorum present > 4/5 * eligible   // R2.14
    elect votes > 1/2 * present
  }
  step 报告: task {
    by 街道党工委
    after 党员大会
    form {
      报告人: text
      参会人数: int
    }
  }
}
"#;

    pub struct PagesEnv {
        pub server: Server,
        pub base: String,
        pub client: reqwest::Client,
        pub admin: String,
        backend: Backend,
    }

    /// What the server stores in, and how to let it go.
    enum Backend {
        Sqlite { store: SqliteStore, _dir: tempfile::TempDir },
        Postgres { store: PgStore, admin: sqlx::PgPool, schema: String },
    }

    pub fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    impl PagesEnv {
        pub async fn start() -> PagesEnv {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path().join("civicflow.db")).await.unwrap();
            let shared: Arc<dyn Store> = Arc::new(store.clone());
            PagesEnv::on(shared, Backend::Sqlite { store, _dir: dir }).await
        }

        /// The same on a fresh PostgreSQL schema, or `None` (after a SKIP line) when unreachable
        /// outside CI.
        pub async fn start_postgres(test: &str) -> Option<PagesEnv> {
            let crate::pg::Schema { admin, name: schema, options } =
                crate::pg::fresh_schema("pages", "pages", test).await?;
            let store = PgStore::connect_with(options, 8).await.unwrap();
            let shared: Arc<dyn Store> = Arc::new(store.clone());
            Some(PagesEnv::on(shared, Backend::Postgres { store, admin, schema }).await)
        }

        async fn on(shared: Arc<dyn Store>, backend: Backend) -> PagesEnv {
            let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let mut config = Config::new(listen, Database::Store(shared));
            config.simulated_clock = Some(t("2012-03-21T09:00:00+08:00"));
            // Issue 12.5: checkpoints soon after each commit, for the audit trail's log column.
            config.checkpoints = civicflow_engine::runtime::CheckpointPolicy {
                events: 1,
                interval: std::time::Duration::from_millis(200),
            };
            let server = Server::start(config).await.unwrap();
            let admin = server.admin_token.clone().unwrap();
            let base = format!("http://{}", server.addr);
            let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
            let env = PagesEnv { server, base, client, admin, backend };
            env.publish(PAGES_POLICY).await;
            env
        }

        pub async fn finish(self) {
            self.server.stop().await;
            match self.backend {
                Backend::Sqlite { store, _dir } => store.close().await,
                Backend::Postgres { store, admin, schema } => {
                    store.close().await;
                    let drop = format!("DROP SCHEMA {schema} CASCADE");
                    sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await.unwrap();
                }
            }
        }

        pub async fn token(&self, name: &str, office: &str, role: &str) -> String {
            create_token(self.server.state.store.as_ref(), name, office, &[role.to_string()]).await.unwrap()
        }

        /// Publishes a policy through the API as the admin.
        pub async fn publish(&self, source: &str) {
            let r = self
                .client
                .post(format!("{}/v1/policies", self.base))
                .bearer_auth(&self.admin)
                .header("content-type", "text/plain")
                .body(source.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        }

        /// Starts an instance through the API as the admin (`{ "policy", "id", "params" }`).
        pub async fn start_with(&self, body: Value) {
            let r = self.client.post(format!("{}/v1/instances", self.base)).bearer_auth(&self.admin).json(&body).send();
            let r = r.await.unwrap();
            assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        }

        /// Moves the simulated clock (`POST /v1/admin/clock`).
        pub async fn advance_to(&self, at: &str) {
            let r = self
                .client
                .post(format!("{}/v1/admin/clock", self.base))
                .bearer_auth(&self.admin)
                .json(&json!({ "advance_to": at }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        }

        /// Starts an instance of the pages policy through the API.
        pub async fn start_instance(&self, id: &str) {
            self.start_with(json!({ "policy": "页面演练", "id": id, "params": { "党员人数": 100 } })).await;
        }

        pub async fn history(&self, id: &str) -> Vec<Value> {
            let r = self
                .client
                .get(format!("{}/v1/instances/{id}/history", self.base))
                .bearer_auth(&self.admin)
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            v["events"].as_array().unwrap().clone()
        }
    }
}

use harness::PagesEnv;

/// A browser of one: its cookies, kept by hand.
struct Browser<'a> {
    env: &'a PagesEnv,
    cookies: Vec<(String, String)>,
}

/// A page: status, `Location`, the `Set-Cookie` lines, the body.
struct Page {
    status: StatusCode,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

impl<'a> Browser<'a> {
    fn new(env: &'a PagesEnv) -> Self {
        Browser { env, cookies: Vec::new() }
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = if self.cookies.is_empty() {
            request
        } else {
            let line = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
            request.header(COOKIE, line)
        };
        let r = request.send().await.unwrap();
        let status = r.status();
        let location = r.headers().get(LOCATION).map(|v| v.to_str().unwrap().to_string());
        let set_cookies: Vec<String> =
            r.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_string()).collect();
        for line in &set_cookies {
            let first = line.split(';').next().unwrap();
            let (k, v) = first.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !v.is_empty() && !line.contains("Max-Age=0") {
                self.cookies.push((k.to_string(), v.to_string()));
            }
        }
        let body = r.text().await.unwrap();
        Page { status, location, set_cookies, body }
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.env.client.get(format!("{}{path}", self.env.base));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body = form.iter().map(|(k, v)| format!("{}={}", q(k), q(v))).collect::<Vec<_>>().join("&");
        let request = self
            .env
            .client
            .post(format!("{}{path}", self.env.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    async fn sign_in(&mut self, token: &str) -> Page {
        let form = self.get("/signin").await;
        assert_eq!(form.status, StatusCode::OK);
        let nonce = hidden(&form.body, "csrf");
        self.post("/signin", &[("csrf", &nonce), ("token", token)]).await
    }
}

/// The value of the first hidden input named `name`.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no hidden `{name}` in {html}")) + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

fn q(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_act_from_the_inbox_and_audit() {
    let env = PagesEnv::start().await;
    env.start_instance("page-1").await;
    let wang = env.token("王书记", "街道党工委", "街道党工委").await;
    let li = env.token("李书记", "东湖社区", "社区党组织").await;
    let zhao = env.token("赵监督", "区纪委监督室", "监督").await;

    // Without a session every page sends to the sign-in page.
    let mut b = Browser::new(&env);
    let p = b.get("/inbox").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location.as_deref(), Some("/signin"));

    // Sign-in: a wrong CSRF nonce is 403, a bad token 401 with the message, a good one a
    // session cookie that is Secure, HttpOnly, SameSite=Strict and is not the token.
    let form = b.get("/signin").await;
    assert!(form.body.contains("令牌"), "{}", form.body);
    let p = b.post("/signin", &[("csrf", "forged"), ("token", &wang)]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let p = b.sign_in("cf_not_a_token").await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(p.body.contains("signin-failed"));
    let p = b.sign_in(&wang).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.location.as_deref(), Some("/inbox"));
    let session = p.set_cookies.iter().find(|c| c.starts_with("cf_session=")).unwrap();
    for flag in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(flag), "{session} lacks {flag}");
    }
    let id = b.cookie("cf_session").unwrap().to_string();
    assert_eq!(id.len(), 64);
    assert!(!session.contains(&wang) && !wang.contains(&id));
    // Another client with a made-up session id is not signed in.
    let mut stranger = Browser::new(&env);
    stranger.cookies.push(("cf_session".into(), "0".repeat(64)));
    assert_eq!(stranger.get("/inbox").await.status, StatusCode::SEE_OTHER);

    // The inbox: the approval, with its due date.
    let inbox = b.get("/inbox").await;
    assert_eq!(inbox.status, StatusCode::OK);
    assert!(inbox.body.contains("资格审查") && inbox.body.contains("page-1"), "{}", inbox.body);
    assert!(inbox.body.contains("王书记"));
    let act_path = format!("/act?instance=page-1&step={}", q("资格审查"));
    assert!(inbox.body.contains("class=\"act-link\"") && inbox.body.contains(&q("资格审查")), "{}", inbox.body);

    // Acting without the CSRF token is 403 and records nothing.
    let before = env.history("page-1").await.len();
    let act = b.get(&act_path).await;
    assert_eq!(act.status, StatusCode::OK);
    let csrf = hidden(&act.body, "csrf");
    let key = hidden(&act.body, "key");
    let p = b.post("/act", &[("instance", "page-1"), ("step", "资格审查"), ("action", "approve"), ("key", &key)]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let p = b
        .post(
            "/act",
            &[("csrf", "x"), ("instance", "page-1"), ("step", "资格审查"), ("action", "approve"), ("key", &key)],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert_eq!(env.history("page-1").await.len(), before);

    // Rejecting without a reason is refused with the rule's words; approving is recorded.
    let p = b
        .post(
            "/act",
            &[("csrf", &csrf), ("instance", "page-1"), ("step", "资格审查"), ("action", "reject"), ("key", "k1")],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
    assert!(p.body.contains("id=\"refusal\"") && p.body.contains("F018"), "{}", p.body);
    assert_eq!(env.history("page-1").await.len(), before);
    let approve = [
        ("csrf", csrf.as_str()),
        ("instance", "page-1"),
        ("step", "资格审查"),
        ("action", "approve"),
        ("comment", "同意"),
        ("key", key.as_str()),
    ];
    let p = b.post("/act", &approve).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let after = env.history("page-1").await.len();
    assert!(after > before);
    // The same form sent twice (a double click) records nothing more: its key is idempotent.
    let p = b.post("/act", &approve).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(env.history("page-1").await.len(), after);
    let done = b.get(p.location.as_deref().unwrap()).await;
    assert!(done.body.contains("id=\"done\""));

    // The timeline shows the step done, who acted, and the next step open.
    let page = b.get("/instances/page-1").await;
    assert_eq!(page.status, StatusCode::OK);
    let row = page.body.split("data-step=\"资格审查\"").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(row.contains("done") && row.contains("approved"), "{row}");
    assert!(page.body.contains("王书记 (街道党工委)"));
    assert!(page.body.contains("<svg") && page.body.contains("node open") && page.body.contains("node done"));

    // The community cannot act on the approval (403 page), and a vote without quorum shows
    // the refusal (F014: 80 of 100 present is not more than 4/5, at least 81 needed) and records nothing.
    let mut c = Browser::new(&env);
    assert_eq!(c.sign_in(&li).await.status, StatusCode::SEE_OTHER);
    let inbox = c.get("/inbox").await;
    assert!(inbox.body.contains("党员大会") && !inbox.body.contains("资格审查"), "{}", inbox.body);
    let vote = c.get(&format!("/act?instance=page-1&step={}", q("党员大会"))).await;
    let csrf_c = hidden(&vote.body, "csrf");
    let n = env.history("page-1").await.len();
    let p = c
        .post(
            "/act",
            &[
                ("csrf", &csrf_c),
                ("instance", "page-1"),
                ("step", "党员大会"),
                ("action", "enter_vote"),
                ("present", "80"),
                ("cast", "80"),
                ("invalid", "0"),
                ("tallies", "甲 70\n乙 66\n丙 60"),
                ("key", "v1"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
    assert!(p.body.contains("F014") && p.body.contains("at least 81 present needed"), "{}", p.body);
    assert!(
        p.body.contains("id=\"present\" value=\"80\"") && p.body.contains("乙 66"),
        "the form keeps what was entered"
    );
    assert_eq!(env.history("page-1").await.len(), n);
    let p = c
        .post(
            "/act",
            &[("csrf", &csrf_c), ("instance", "page-1"), ("step", "资格审查"), ("action", "approve"), ("key", "v2")],
        )
        .await;
    assert!(p.status == StatusCode::FORBIDDEN || p.status == StatusCode::CONFLICT, "{}", p.status);

    // With a quorum the vote is recorded; then the report's form, generated from the IR's form
    // definition (a text and an int field), refuses a bad number and records a good one.
    let p = c
        .post(
            "/act",
            &[
                ("csrf", &csrf_c),
                ("instance", "page-1"),
                ("step", "党员大会"),
                ("action", "enter_vote"),
                ("present", "90"),
                ("cast", "90"),
                ("invalid", "0"),
                ("tallies", "甲 70\n乙 66\n丙 60"),
                ("key", "v3"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let form = b.get(&format!("/act?instance=page-1&step={}", q("报告"))).await;
    assert!(form.body.contains("name=\"f.报告人\"") && form.body.contains("type=\"number\" name=\"f.参会人数\""));
    let n = env.history("page-1").await.len();
    let bad = [
        ("csrf", csrf.as_str()),
        ("instance", "page-1"),
        ("step", "报告"),
        ("action", "submit_form"),
        ("f.报告人", "王书记"),
        ("f.参会人数", "九十"),
        ("key", "f1"),
    ];
    let p = b.post("/act", &bad).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
    assert!(p.body.contains("F012") && p.body.contains("参会人数"), "{}", p.body);
    assert_eq!(env.history("page-1").await.len(), n);
    let mut good = bad;
    good[5] = ("f.参会人数", "90");
    good[6] = ("key", "f2");
    assert_eq!(b.post("/act", &good).await.status, StatusCode::SEE_OTHER);
    let page = b.get("/instances/page-1").await;
    assert!(page.body.contains("id=\"instance-status\">已办结 completed<"), "{}", page.body);

    // Oversight staff: the audit trail with the act, the chain verified, filters and exports.
    let mut o = Browser::new(&env);
    assert_eq!(o.sign_in(&zhao).await.status, StatusCode::SEE_OTHER);
    let audit = o.get("/instances/page-1/audit").await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.body);
    assert!(audit.body.contains("id=\"verify-ok\""), "{}", audit.body);
    assert!(audit.body.contains("王书记") && audit.body.contains("acted"));
    // Issue 12.5: every event's content proved to be in the latest signed checkpoint.
    let n = env.history("page-1").await.len();
    let mut audit = audit;
    for _ in 0..100 {
        if !audit.body.contains("log-pending") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        audit = o.get("/instances/page-1/audit").await;
    }
    assert_eq!(audit.body.matches("class=\"log-in\"").count(), n, "{}", audit.body);
    assert!(audit.body.contains("<td class=\"log-in\"><span class=\"ok\">✔ 已收录 #0</span>"), "{}", audit.body);
    assert!(audit.body.contains("id=\"checkpoint-size\">"), "{}", audit.body);
    let filtered = o.get(&format!("/instances/page-1/audit?office={}&kind=acted", q("王书记"))).await;
    assert!(filtered.body.contains("(1 / "), "{}", filtered.body);
    let csv = o.get("/instances/page-1/audit.csv").await;
    assert_eq!(csv.status, StatusCode::OK);
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines[0], "seq,at,actor,role,kind,payload,prev_hash,hash");
    assert_eq!(lines.len(), env.history("page-1").await.len() + 1);
    let jsonl = o.get(&format!("/instances/page-1/audit.jsonl?office={}", q("王书记"))).await;
    let events: Vec<Value> = jsonl.body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        !events.is_empty() && events.iter().all(|e| e["actor"] == "王书记" && e["hash"].as_str().unwrap().len() == 64)
    );

    // Signing out ends the session (the POST needs the CSRF token too).
    let inbox = o.get("/inbox").await;
    let csrf_o = hidden(&inbox.body, "csrf");
    assert_eq!(o.post("/signout", &[("csrf", "no")]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(o.post("/signout", &[("csrf", &csrf_o)]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(o.get("/instances/page-1/audit").await.status, StatusCode::SEE_OTHER);
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_notices_english_and_pages_of_a_long_list() {
    let env = PagesEnv::start().await;
    for i in 0..55 {
        env.start_instance(&format!("list-{i:03}")).await;
    }
    let wang = env.token("王书记", "街道党工委", "街道党工委").await;
    let mut b = Browser::new(&env);
    assert_eq!(b.sign_in(&wang).await.status, StatusCode::SEE_OTHER);

    // 55 open approvals: two pages of inbox, two pages of instances.
    let inbox = b.get("/inbox").await;
    assert!(inbox.body.contains("1 / 2") && inbox.body.contains("/inbox?page=2"), "{}", inbox.body);
    assert_eq!(inbox.body.matches("class=\"act-link\"").count(), 50);
    let second = b.get("/inbox?page=2").await;
    assert_eq!(second.body.matches("class=\"act-link\"").count(), 5);
    let list = b.get("/instances?page=2").await;
    assert!(list.body.contains("2 / 2") && list.body.contains("list-054"), "{}", list.body);

    // Past the due date (5 working days): the inbox marks the steps overdue, the timeline late.
    assert!(!inbox.body.contains("已超期"));
    let r = env
        .client
        .post(format!("{}/v1/admin/clock", env.base))
        .bearer_auth(&env.admin)
        .json(&json!({ "advance_to": "2012-04-10T09:00:00+08:00" }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let inbox = b.get("/inbox").await;
    assert!(inbox.body.contains("已超期") && inbox.body.contains("<tr class=\"overdue\">"), "{}", inbox.body);
    let page = b.get("/instances/list-000").await;
    let row = page.body.split("data-step=\"资格审查\"").next().unwrap().rsplit("<tr").next().unwrap();
    assert!(row.contains("late"), "{row}");
    assert!(page.body.contains("2012-04-10 09:00"), "today on the timeline");

    // A policy's source, highlighted, its versions and its graph; the bundled election.
    let policy = b.get(&format!("/policies/{}", q("页面演练"))).await;
    assert_eq!(policy.status, StatusCode::OK);
    assert!(policy.body.contains("<span class=\"k\">policy</span>"), "{}", policy.body);
    assert!(policy.body.contains("<span class=\"c\">// R2.14</span>"));
    assert!(policy.body.contains("pages.1") && policy.body.contains("<svg"));
    let list = b.get("/policies").await;
    assert!(list.body.contains("election") && list.body.contains("页面演练"));
    assert_eq!(b.get("/policies/nothing").await.status, StatusCode::NOT_FOUND);
    // A draft is checked, not published: its diagnostics as `civicflow check` prints them.
    let csrf = hidden(&list.body, "csrf");
    let draft = "policy 草稿 {\n  role 甲\n  step 一: approval { by 乙 }\n}\n";
    let checked = b.post("/policies/check", &[("csrf", &csrf), ("source", draft)]).await;
    assert_eq!(checked.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", checked.body);
    assert!(checked.body.contains("error[E") && checked.body.contains("draft.cf:3:"), "{}", checked.body);
    let good = "policy 草稿 {\n  role 甲\n  step 一: approval { by 甲 }\n}\n";
    let checked = b.post("/policies/check", &[("csrf", &csrf), ("source", good)]).await;
    assert_eq!(checked.status, StatusCode::OK);
    assert!(checked.body.contains("<svg"));
    assert_eq!(b.post("/policies/check", &[("csrf", "no"), ("source", good)]).await.status, StatusCode::FORBIDDEN);
    assert!(!b.get("/policies").await.body.contains(">草稿</a>"));

    // Notices: the bundled community-access decision rendered with instance data.
    let r = env
        .client
        .post(format!("{}/v1/instances", env.base))
        .bearer_auth(&env.admin)
        .json(&json!({ "policy": "community_access", "id": "access-1", "params": {
            "申请部门": "区卫健委", "事项名称": "健康档案入户核查", "社区名称": "东湖"
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let notice = b.get("/instances/access-1/notice").await;
    assert_eq!(notice.status, StatusCode::OK);
    assert!(notice.body.contains("申请部门:区卫健委"), "{}", notice.body);

    // English, remembered in a cookie.
    let en = b.get("/inbox?lang=en").await;
    assert!(en.body.contains("Inbox") && en.body.contains("Sign out"), "{}", en.body);
    assert!(en.set_cookies.iter().any(|c| c.starts_with("cf_lang=en")));
    let again = b.get("/instances").await;
    assert!(again.body.contains("Instances") && !again.body.contains("办理事项"));
    let zh = b.get("/instances?lang=zh").await;
    assert!(zh.body.contains("办理事项"));

    // An unknown instance is a 404 page, not a problem document.
    let missing = b.get("/instances/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("<html"));
    env.finish().await;
}

/// Issue 8 (R3.5): a step escalated to a role is in that role's inbox page marked 已督办, and its
/// act page offers urging (催办), which is recorded; the office doing the work sees no urge form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalated_steps_are_marked_in_the_leaders_inbox_and_can_be_urged() {
    const ESCALATING: &str = r#"
policy 督办演练 {
  role 首办部门
  role 部门主要领导
  step 办理: task {
    by 首办部门
    due 1 workdays
    on breach overdue, escalate 部门主要领导
    extend by 部门主要领导 max 5 workdays
  }
}
"#;
    let env = PagesEnv::start().await;
    env.publish(ESCALATING).await;
    env.start_with(json!({ "policy": "督办演练", "id": "esc-1", "params": {} })).await;
    let leader = env.token("钱局长", "市政公用局", "部门主要领导").await;
    let dept = env.token("赵科长", "市政公用局", "首办部门").await;
    let mut b = Browser::new(&env);
    b.sign_in(&leader).await;
    assert!(b.get("/inbox").await.body.contains("inbox-empty"), "nothing escalated yet");
    env.advance_to("2012-03-23T09:00:00+08:00").await;
    let inbox = b.get("/inbox").await;
    assert!(
        inbox.body.contains("esc-1") && inbox.body.contains("已督办") && inbox.body.contains("已超期"),
        "{}",
        inbox.body
    );
    let act = b.get(&format!("/act?instance=esc-1&step={}", q("办理"))).await;
    assert!(act.body.contains("id=\"do-urge\""), "{}", act.body);
    let (csrf, key) = (hidden(&act.body, "csrf"), hidden(&act.body, "key"));
    let before = env.history("esc-1").await.len();
    let p = b
        .post(
            "/act",
            &[
                ("csrf", &csrf),
                ("instance", "esc-1"),
                ("step", "办理"),
                ("action", "urge"),
                ("key", &key),
                ("comment", "请今天办结"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let history = env.history("esc-1").await;
    assert_eq!(history.len(), before + 1);
    assert_eq!(history[before]["kind"], "urged");
    // Issue 11.1 (延期): the leader's page offers the extension with what is left of it.
    let act = b.get(&format!("/act?instance=esc-1&step={}", q("办理"))).await;
    assert!(act.body.contains("id=\"do-extend\"") && act.body.contains("最多还可延长 5 个工作日"), "{}", act.body);
    let key = format!("{}-x", hidden(&act.body, "key").trim_end_matches("-u"));
    let extend = [
        ("csrf", csrf.as_str()),
        ("instance", "esc-1"),
        ("step", "办理"),
        ("action", "extend"),
        ("key", key.as_str()),
        ("amount", "2"),
        ("reason", "等待检测报告"),
    ];
    let p = b.post("/act", &extend).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let history = env.history("esc-1").await;
    assert_eq!(history.len(), before + 2);
    assert_eq!(history[before + 1]["kind"], "extended");
    assert_eq!(history[before + 1]["payload"]["amount"], 2);
    assert_eq!(history[before + 1]["payload"]["reason"], "等待检测报告");
    let act = b.get(&format!("/act?instance=esc-1&step={}", q("办理"))).await;
    assert!(act.body.contains("最多还可延长 3 个工作日"), "{}", act.body);
    // The department doing the work is not escalated to and has no urge form (nor may it extend).
    let mut d = Browser::new(&env);
    d.sign_in(&dept).await;
    let own = d.get("/inbox").await;
    assert!(own.body.contains("esc-1") && !own.body.contains("已督办"), "{}", own.body);
    let own_act = d.get(&format!("/act?instance=esc-1&step={}", q("办理"))).await;
    assert!(!own_act.body.contains("do-urge") && !own_act.body.contains("do-extend"), "{}", own_act.body);
    env.finish().await;
}

/// Issue 11.2 on the act page: the role `approvers by` names adds an approver from the pool (加签)
/// and sees who may be removed (减签); the role `transfer by` names hands a step on (转办).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_2_approvers_and_transfers_from_the_act_page() {
    const CHANGES: &str = r#"
policy 加签转办 {
  role 甲科
  role 乙科
  role 财政科
  role 承办 bound by starter
  role 分管领导
  step 会签: approval { by 甲科, 乙科 rule all approvers by 分管领导 from 财政科 }
  step 办理: task { by 承办 transfer by 分管领导 }
}
"#;
    let env = PagesEnv::start().await;
    env.publish(CHANGES).await;
    let starter = env.token("孙", "城管局", "承办").await;
    let r = env
        .client
        .post(format!("{}/v1/instances", env.base))
        .bearer_auth(&starter)
        .json(&json!({ "policy": "加签转办", "id": "chg-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let leader = env.token("钱", "区政府", "分管领导").await;
    let mut b = Browser::new(&env);
    b.sign_in(&leader).await;
    let act = b.get(&format!("/act?instance=chg-1&step={}", q("会签"))).await;
    assert!(
        act.body.contains("id=\"do-add-approver\"") && act.body.contains("<option>财政科</option>"),
        "{}",
        act.body
    );
    assert!(
        act.body.contains("id=\"do-remove-approver\"") && act.body.contains("<option>乙科</option>"),
        "{}",
        act.body
    );
    assert!(!act.body.contains("do-transfer"), "{}", act.body);
    let (csrf, key) = (hidden(&act.body, "csrf"), hidden(&act.body, "key"));
    let key = format!("{}-a", key.split('-').next().unwrap());
    let add = [
        ("csrf", csrf.as_str()),
        ("instance", "chg-1"),
        ("step", "会签"),
        ("action", "add_approver"),
        ("key", key.as_str()),
        ("role", "财政科"),
        ("reason", "涉及专项资金"),
    ];
    let p = b.post("/act", &add).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(env.history("chg-1").await.last().unwrap()["kind"], "approver_added");
    let act = b.get(&format!("/act?instance=chg-1&step={}", q("会签"))).await;
    assert!(!act.body.contains("do-add-approver"), "the pool is used up: {}", act.body);
    assert!(act.body.contains("<option>财政科</option>"), "财政科 may now be removed: {}", act.body);
    // 转办: the leader hands 办理 from 城管局 to 住建局.
    let act = b.get(&format!("/act?instance=chg-1&step={}", q("办理"))).await;
    assert!(act.body.contains("id=\"do-transfer\""), "{}", act.body);
    let key = format!("{}-t", hidden(&act.body, "key").split('-').next().unwrap());
    let transfer = [
        ("csrf", csrf.as_str()),
        ("instance", "chg-1"),
        ("step", "办理"),
        ("action", "transfer"),
        ("key", key.as_str()),
        ("to", "住建局"),
        ("reason", "职责调整"),
    ];
    let p = b.post("/act", &transfer).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let last = env.history("chg-1").await.last().unwrap().clone();
    assert_eq!((&last["kind"], &last["payload"]["to"]), (&json!("transferred"), &json!("住建局")));
    env.finish().await;
}

/// Issue 11.2 on the pages: the role `copy by` names copies a done step to an office (抄送); that
/// office's inbox marks it 抄送, its act page offers 已阅 and lists the copy, and once read the
/// inbox is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_2_a_copy_is_sent_and_read_from_the_pages() {
    const COPIED: &str = r#"
policy 抄送演练 {
  role 承办
  role 纪工委
  step 办理: task { by 承办 copy by 承办 }
  step 归档: task { by 承办 after 办理 }
}
"#;
    let env = PagesEnv::start().await;
    env.publish(COPIED).await;
    env.start_with(json!({ "policy": "抄送演练", "id": "cc-1" })).await;
    let clerk = env.token("孙", "城管局", "承办").await;
    let mut b = Browser::new(&env);
    b.sign_in(&clerk).await;
    let act = b.get(&format!("/act?instance=cc-1&step={}", q("办理"))).await;
    let (csrf, key) = (hidden(&act.body, "csrf"), hidden(&act.body, "key"));
    let done = [
        ("csrf", csrf.as_str()),
        ("instance", "cc-1"),
        ("step", "办理"),
        ("action", "complete"),
        ("key", key.as_str()),
        ("report", "已办结"),
    ];
    assert_eq!(b.post("/act", &done).await.status, StatusCode::SEE_OTHER);
    // Done, it may still be copied (its result).
    let act = b.get(&format!("/act?instance=cc-1&step={}", q("办理"))).await;
    assert!(act.body.contains("id=\"do-copy\"") && !act.body.contains("do-complete"), "{}", act.body);
    let key = format!("{}-k", hidden(&act.body, "key").split('-').next().unwrap());
    let copy = [
        ("csrf", csrf.as_str()),
        ("instance", "cc-1"),
        ("step", "办理"),
        ("action", "copy_to"),
        ("key", key.as_str()),
        ("to", "街道纪工委"),
        ("message", "请知悉"),
    ];
    let p = b.post("/act", &copy).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let reader = env.token("周", "街道纪工委", "纪工委").await;
    let mut r = Browser::new(&env);
    r.sign_in(&reader).await;
    let inbox = r.get("/inbox").await;
    assert!(inbox.body.contains("<span class=\"copied\">抄送</span>"), "{}", inbox.body);
    let act = r.get(&format!("/act?instance=cc-1&step={}", q("办理"))).await;
    assert!(act.body.contains("id=\"do-mark-read\"") && !act.body.contains("do-copy"), "{}", act.body);
    assert!(act.body.contains("<td>街道纪工委</td>") && act.body.contains("未阅"), "{}", act.body);
    let (csrf, key) = (hidden(&act.body, "csrf"), hidden(&act.body, "key"));
    let key = format!("{}-m", key.split('-').next().unwrap());
    let read = [
        ("csrf", csrf.as_str()),
        ("instance", "cc-1"),
        ("step", "办理"),
        ("action", "mark_read"),
        ("key", key.as_str()),
    ];
    let p = r.post("/act", &read).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let last = env.history("cc-1").await.last().unwrap().clone();
    assert_eq!((&last["kind"], &last["payload"]["principal"]), (&json!("copy_read"), &json!("周")));
    assert!(r.get("/inbox").await.body.contains("id=\"inbox-empty\""));
    env.finish().await;
}

/// Issue 11.3: the instance page says plainly that an instance is suspended (挂起), since when
/// and why, and offers the role declared `may suspend` the form that suspends and then resumes it;
/// the office doing the work sees the banner and no form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_3_an_instance_is_suspended_and_resumed_from_its_page() {
    const SUSPENDABLE: &str = r#"
policy 挂起演练 {
  role 首办部门
  role 协调办 may suspend
  step 办理: task { by 首办部门 due 5 workdays }
}
"#;
    let env = PagesEnv::start().await;
    env.publish(SUSPENDABLE).await;
    env.start_with(json!({ "policy": "挂起演练", "id": "sus-1" })).await;
    let office = env.token("孙主任", "协调办", "协调办").await;
    let dept = env.token("赵科长", "市政公用局", "首办部门").await;
    let mut b = Browser::new(&env);
    b.sign_in(&office).await;
    let page = b.get("/instances/sus-1").await;
    assert!(page.body.contains("id=\"do-suspend\"") && !page.body.contains("id=\"suspended\""), "{}", page.body);
    let (csrf, key) = (hidden(&page.body, "csrf"), hidden(&page.body, "key"));
    let form = [("csrf", csrf.as_str()), ("key", key.as_str()), ("role", "协调办"), ("reason", "等待法院裁定")];
    let p = b.post("/instances/sus-1/suspend", &form).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let page = b.get("/instances/sus-1").await;
    assert!(page.body.contains("id=\"suspended\"") && page.body.contains("等待法院裁定"), "{}", page.body);
    assert!(page.body.contains("id=\"do-resume\""), "{}", page.body);
    assert_eq!(env.history("sus-1").await.last().unwrap()["kind"], "suspended");
    // The department sees that it is suspended, and may neither suspend nor resume it.
    let mut d = Browser::new(&env);
    d.sign_in(&dept).await;
    let own = d.get("/instances/sus-1").await;
    assert!(own.body.contains("id=\"suspended\"") && !own.body.contains("suspension-form"), "{}", own.body);
    // Resumed with a reason: the banner is gone.
    let (csrf, key) = (hidden(&page.body, "csrf"), hidden(&page.body, "key"));
    let form = [("csrf", csrf.as_str()), ("key", key.as_str()), ("role", "协调办"), ("reason", "法院已裁定")];
    let p = b.post("/instances/sus-1/resume", &form).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let page = b.get("/instances/sus-1").await;
    assert!(!page.body.contains("id=\"suspended\"") && page.body.contains("id=\"do-suspend\""), "{}", page.body);
    assert_eq!(env.history("sus-1").await.last().unwrap()["kind"], "resumed");
    env.finish().await;
}

/// Issue 11.4: the instance page offers the role declared `may correct` the form that corrects a
/// start parameter, showing its value now; a correction is recorded, and one that would make the
/// completed registration invalid comes back with the rule's words (F060).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_4_a_parameter_is_corrected_from_the_instance_page() {
    const CORRECTABLE: &str = r#"
policy 更正演练 {
  param 户数: int
  role 领导小组 may correct
  role 承办
  let 代表下限: int = if 户数 <= 1500 { 50 } else { 50 + floor((户数 - 1500) / 100) }
  step 登记: task { by 承办 form { 代表人数: int require 代表人数 >= 代表下限 else "R2.6 居民代表人数不得少于下限" } }
  step 办理: task { by 承办 after 登记 }
}
"#;
    let env = PagesEnv::start().await;
    env.publish(CORRECTABLE).await;
    let start = json!({ "policy": "更正演练", "id": "fix-p", "params": { "户数": 1600 } });
    env.start_with(start).await;
    let clerk = env.token("孙", "民政科", "承办").await;
    let group = env.token("周组长", "街道办事处", "领导小组").await;
    let mut c = Browser::new(&env);
    c.sign_in(&clerk).await;
    assert!(!c.get("/instances/fix-p").await.body.contains("correction-form"), "the clerk may not correct");
    let act = c.get(&format!("/act?instance=fix-p&step={}", q("登记"))).await;
    let (csrf, key) = (hidden(&act.body, "csrf"), hidden(&act.body, "key"));
    let key = format!("{}-s", key.split('-').next().unwrap());
    let registered = [
        ("csrf", csrf.as_str()),
        ("instance", "fix-p"),
        ("step", "登记"),
        ("action", "submit_form"),
        ("key", key.as_str()),
        ("f.代表人数", "55"),
    ];
    assert_eq!(c.post("/act", &registered).await.status, StatusCode::SEE_OTHER);
    let mut b = Browser::new(&env);
    b.sign_in(&group).await;
    let page = b.get("/instances/fix-p").await;
    assert!(page.body.contains("id=\"do-correct\"") && page.body.contains("户数(int,现值 1600)"), "{}", page.body);
    let (csrf, key) = (hidden(&page.body, "csrf"), hidden(&page.body, "key"));
    let form = [
        ("csrf", csrf.as_str()),
        ("key", key.as_str()),
        ("role", "领导小组"),
        ("param", "户数"),
        ("value", "2000"),
        ("reason", "户数录入有误"),
    ];
    let p = b.post("/instances/fix-p/corrections", &form).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let last = env.history("fix-p").await.last().unwrap().clone();
    assert_eq!((&last["kind"], &last["payload"]["reason"]), (&json!("corrected"), &json!("户数录入有误")));
    let page = b.get("/instances/fix-p").await;
    let (csrf, key) = (hidden(&page.body, "csrf"), hidden(&page.body, "key"));
    let form = [
        ("csrf", csrf.as_str()),
        ("key", key.as_str()),
        ("role", "领导小组"),
        ("param", "户数"),
        ("value", "2100"),
        ("reason", "再次更正"),
    ];
    let refused = b.post("/instances/fix-p/corrections", &form).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    assert!(
        refused.body.contains("F060") && refused.body.contains("R2.6 居民代表人数不得少于下限"),
        "{}",
        refused.body
    );
    env.finish().await;
}

/// Issue 11.7: return, withdraw and delegate from the act page, where an office looks for them,
/// and the pages' words Chinese first: the kind in the inbox, the acts on the instance page, the
/// events on the audit page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_7_return_withdraw_delegate_from_the_act_page_in_chinese_words() {
    const FLOW: &str = r#"
policy 退回撤回委托 {
  role 承办
  role 审核科
  role 财务科
  step 受理: task { by 承办 }
  step 会审: approval { by 审核科, 财务科 rule all after 受理 may return 受理 by 审核科 }
}
"#;
    let env = PagesEnv::start().await;
    env.publish(FLOW).await;
    env.start_with(json!({ "policy": "退回撤回委托", "id": "rwd-1" })).await;
    let clerk = env.token("孙", "民政科", "承办").await;
    let review = env.token("周", "审核科", "审核科").await;
    let mut c = Browser::new(&env);
    c.sign_in(&clerk).await;
    let act = c.get(&format!("/act?instance=rwd-1&step={}", q("受理"))).await;
    let (csrf, key) = (hidden(&act.body, "csrf"), hidden(&act.body, "key"));
    let done = [
        ("csrf", csrf.as_str()),
        ("instance", "rwd-1"),
        ("step", "受理"),
        ("action", "complete"),
        ("key", key.as_str()),
        ("report", "已受理"),
    ];
    assert_eq!(c.post("/act", &done).await.status, StatusCode::SEE_OTHER);
    let mut b = Browser::new(&env);
    b.sign_in(&review).await;
    let inbox = b.get("/inbox").await;
    assert!(inbox.body.contains("<td>审批 approval</td>"), "{}", inbox.body);
    let step = format!("/act?instance=rwd-1&step={}", q("会审"));
    let act = b.get(&step).await;
    assert!(
        act.body.contains("id=\"do-return\"") && act.body.contains("<option value=\"受理\">受理</option>"),
        "{}",
        act.body
    );
    assert!(act.body.contains("id=\"do-delegate\"") && !act.body.contains("do-withdraw"), "{}", act.body);
    let (csrf, key) = (hidden(&act.body, "csrf"), hidden(&act.body, "key"));
    let base = key.split('-').next().unwrap().to_string();
    let form = |action: &'static str, suffix: &str, extra: &[(&'static str, &'static str)]| {
        let mut f = vec![("csrf", csrf.clone()), ("instance", "rwd-1".to_string()), ("step", "会审".to_string())];
        f.push(("action", action.to_string()));
        f.push(("key", format!("{base}-{suffix}")));
        f.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        f
    };
    // Approved, then taken back (撤回) while 财务科 has not acted.
    let approve = form("approve", "a", &[]);
    let approve: Vec<(&str, &str)> = approve.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(b.post("/act", &approve).await.status, StatusCode::SEE_OTHER);
    let act = b.get(&step).await;
    assert!(act.body.contains("id=\"do-withdraw\""), "{}", act.body);
    let withdraw = form("withdraw", "w", &[]);
    let withdraw: Vec<(&str, &str)> = withdraw.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(b.post("/act", &withdraw).await.status, StatusCode::SEE_OTHER);
    assert_eq!(env.history("rwd-1").await.last().unwrap()["kind"], "withdrawn");
    // 委托 to a colleague, then 退回 to 受理 with a reason.
    let delegate = form("delegate", "d", &[("to", "吴科员")]);
    let delegate: Vec<(&str, &str)> = delegate.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(b.post("/act", &delegate).await.status, StatusCode::SEE_OTHER);
    let last = env.history("rwd-1").await.last().unwrap().clone();
    assert_eq!((&last["kind"], &last["payload"]["to"]), (&json!("delegated"), &json!("吴科员")));
    // The acts read Chinese first (before the return resets them).
    let page = b.get("/instances/rwd-1").await;
    assert!(page.body.contains("<td>办结 complete</td>"), "{}", page.body);
    let back = form("return_to", "b", &[("target", "受理"), ("reason", "材料不全")]);
    let back: Vec<(&str, &str)> = back.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(b.post("/act", &back).await.status, StatusCode::SEE_OTHER);
    let history = env.history("rwd-1").await;
    let returned = history.iter().rev().find(|e| e["kind"] == "returned").unwrap();
    assert_eq!((&returned["payload"]["to"], &returned["payload"]["reason"]), (&json!("受理"), &json!("材料不全")));
    assert_eq!(history.last().unwrap()["kind"], "opened", "受理 is open again");
    let audit = b.get("/instances/rwd-1/audit").await;
    assert!(
        audit.body.contains("<td>退回 returned</td>") && audit.body.contains(">委托 delegated</option>"),
        "{}",
        audit.body
    );
    env.finish().await;
}

/// Issue 11.5 and 11.7: the admin's migrations page — a plan made from the form, shown with every
/// instance (one refused, its reason) before anything moves, then applied with what it did; the
/// page is the admin's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_5_a_migration_is_planned_reviewed_and_applied_from_the_admin_page() {
    const V1: &str = r#"
policy 迁移演练 {
  version "1"
  role 甲
  role 乙
  step 受理: task { by 甲 }
  step 审核: approval { by 乙 after 受理 }
  step 归档: task { by 甲 after 审核 }
}
"#;
    let v2 = V1
        .replace(r#"version "1""#, r#"version "2""#)
        .replace("step 受理:", "step 登记:")
        .replace("after 受理", "after 登记")
        .replace(
            "step 归档: task { by 甲 after 审核 }",
            "step 复核: approval { by 乙 after 审核 }\n  step 归档: task { by 甲 after 复核 }",
        );
    let env = PagesEnv::start().await;
    env.publish(V1).await;
    for id in ["mv-1", "mv-2"] {
        env.start_with(json!({ "policy": "迁移演练", "id": id })).await;
    }
    // mv-2 is past the point where version 2 adds 复核.
    let clerk = env.token("孙", "民政科", "甲").await;
    let reviewer = env.token("周", "审核科", "乙").await;
    let act = |token: &str, step: &str, body: Value| {
        let url = format!("{}/v1/instances/mv-2/steps/{}/actions", env.base, q(step));
        env.client.post(url).bearer_auth(token).json(&body).send()
    };
    let done = json!({ "action": "complete", "data": { "report": "已受理" } });
    assert_eq!(act(&clerk, "受理", done).await.unwrap().status(), StatusCode::OK);
    assert_eq!(act(&reviewer, "审核", json!({ "action": "approve" })).await.unwrap().status(), StatusCode::OK);
    env.publish(&v2).await;

    let mut c = Browser::new(&env);
    c.sign_in(&clerk).await;
    assert_eq!(c.get("/migrations").await.status, StatusCode::FORBIDDEN);
    let mut b = Browser::new(&env);
    b.sign_in(&env.admin).await;
    let page = b.get("/migrations").await;
    assert!(page.body.contains("id=\"plan-form\"") && page.body.contains("id=\"migrations-link\""), "{}", page.body);
    let csrf = hidden(&page.body, "csrf");
    let form = [("csrf", csrf.as_str()), ("policy", "迁移演练"), ("from", "1"), ("to", "2"), ("renames", "受理=登记")];
    let planned = b.post("/migrations", &form).await;
    assert_eq!(planned.status, StatusCode::SEE_OTHER, "{}", planned.body);
    let location = planned.location.clone().unwrap();
    let plan = b.get(&location).await;
    assert!(
        plan.body.contains("<li>更名 受理 → 登记</li>") && plan.body.contains("<li>新增 复核</li>"),
        "{}",
        plan.body
    );
    assert!(plan.body.contains("可迁移 1 · 不能迁移 1"), "{}", plan.body);
    assert!(plan.body.contains("it would be added before &#x60;归档&#x60;, which is open already"), "{}", plan.body);
    let csrf = hidden(&plan.body, "csrf");
    let applied = b.post(&format!("{location}/apply"), &[("csrf", csrf.as_str())]).await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.body);
    assert!(applied.body.contains("id=\"report\">本次迁移 1 · 此前已迁移 0"), "{}", applied.body);
    let history = env.history("mv-1").await;
    assert!(history.iter().any(|e| e["kind"] == "migrated"), "{history:?}");
    // A plan that cannot be made says why, with what was entered.
    let bad = [("csrf", csrf.as_str()), ("policy", "迁移演练"), ("from", "1"), ("to", "9"), ("renames", "")];
    let refused = b.post("/migrations", &bad).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
    assert!(refused.body.contains("id=\"refusal\"") && refused.body.contains("value=\"9\""), "{}", refused.body);
    env.finish().await;
}

/// Issue 11.1 on the act page: where the policy says `approved by`, the department asks for an
/// extension and the leader approves it from the step's page; the deadline moves then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_1_an_extension_asked_for_is_approved_from_the_act_page() {
    const ASKED: &str = r#"
policy 延期审批 {
  role 承办
  role 分管领导
  step 办理: task { by 承办 due 5 workdays extend by 承办 max 5 workdays approved by 分管领导 }
}
"#;
    let env = PagesEnv::start().await;
    env.publish(ASKED).await;
    env.start_with(json!({ "policy": "延期审批", "id": "ext-1" })).await;
    let clerk = env.token("孙", "民政科", "承办").await;
    let leader = env.token("钱", "区政府", "分管领导").await;
    let step = format!("/act?instance=ext-1&step={}", q("办理"));
    let mut c = Browser::new(&env);
    c.sign_in(&clerk).await;
    let act = c.get(&step).await;
    let (csrf, key) = (hidden(&act.body, "csrf"), hidden(&act.body, "key"));
    let key = format!("{}-x", key.split('-').next().unwrap());
    let ask = [
        ("csrf", csrf.as_str()),
        ("instance", "ext-1"),
        ("step", "办理"),
        ("action", "extend"),
        ("key", key.as_str()),
        ("amount", "3"),
        ("reason", "需现场核查"),
    ];
    assert_eq!(c.post("/act", &ask).await.status, StatusCode::SEE_OTHER);
    assert_eq!(env.history("ext-1").await.last().unwrap()["kind"], "extension_requested");
    assert!(!c.get(&step).await.body.contains("id=\"do-extend\""), "one request waits at a time");
    let mut b = Browser::new(&env);
    b.sign_in(&leader).await;
    let act = b.get(&step).await;
    assert!(act.body.contains("id=\"extension-asked\"") && act.body.contains("需现场核查"), "{}", act.body);
    let (csrf, key) = (hidden(&act.body, "csrf"), hidden(&act.body, "key"));
    let key = format!("{}-ea", key.split('-').next().unwrap());
    let approve = [
        ("csrf", csrf.as_str()),
        ("instance", "ext-1"),
        ("step", "办理"),
        ("action", "approve_extension"),
        ("key", key.as_str()),
        ("comment", "同意"),
    ];
    assert_eq!(b.post("/act", &approve).await.status, StatusCode::SEE_OTHER);
    let last = env.history("ext-1").await.last().unwrap().clone();
    // Opened Wednesday 2012-03-21: due the end of Wednesday 03-28; 3 more working days: 03-29,
    // 03-30 and the Saturday 03-31 worked for 清明.
    assert_eq!((&last["kind"], &last["actor"]), (&json!("extended"), &json!("钱")));
    assert_eq!(
        (&last["payload"]["from"], &last["payload"]["to"]),
        (&json!("2012-03-28T16:00:00Z"), &json!("2012-03-31T16:00:00Z"))
    );
    env.finish().await;
}

/// The R6.2 page checks on one store.
async fn r6_2_pages_redact(env: PagesEnv) {
    let source = civicflow_policies::get("residents_demand").unwrap().source;
    let r = env
        .client
        .post(format!("{}/v1/policies", env.base))
        .bearer_auth(&env.admin)
        .header("content-type", "text/plain")
        .body(source)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let own = env.token("李主任", "舜耕社区", "社区居委会").await;
    let other = env.token("王主任", "燕山社区", "社区居委会").await;
    let start = json!({ "policy": "residents_demand", "id": "demand-1", "params": { "社区名称": "舜耕社区" } });
    let r = env.client.post(format!("{}/v1/instances", env.base)).bearer_auth(&env.admin).json(&start).send().await;
    let r = r.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());

    // The other community's live stream, opened before the form is recorded.
    let mut stream =
        env.client.get(format!("{}/v1/events?instance=demand-1", env.base)).bearer_auth(&other).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let data =
        json!({ "诉求人": "张三", "联系电话": "13800000000", "诉求内容": "小区路灯损坏", "受理日期": "2012-03-21" });
    let r = env
        .client
        .post(format!("{}/v1/instances/demand-1/steps/{}/actions", env.base, q("诉求受理")))
        .bearer_auth(&own)
        .json(&json!({ "action": "submit_form", "data": data }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let mut seen = String::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !seen.contains("event: form_recorded") || !seen.contains("\n\n") {
            match stream.chunk().await.unwrap() {
                Some(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                None => break,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no form_recorded event on the stream: {seen}");
    assert!(seen.contains("[个人信息]") && !seen.contains("13800000000") && !seen.contains("张三"), "{seen}");
    assert!(seen.contains("小区路灯损坏"), "{seen}");

    let mut theirs = Browser::new(&env);
    assert_eq!(theirs.sign_in(&other).await.status, StatusCode::SEE_OTHER);
    let mut mine = Browser::new(&env);
    assert_eq!(mine.sign_in(&own).await.status, StatusCode::SEE_OTHER);
    for path in ["/instances/demand-1/audit", "/instances/demand-1/audit.csv", "/instances/demand-1/audit.jsonl"] {
        let hidden = theirs.get(path).await;
        assert_eq!(hidden.status, StatusCode::OK, "{path}");
        assert!(!hidden.body.contains("13800000000") && !hidden.body.contains("张三"), "{path}: {}", hidden.body);
        assert!(hidden.body.contains("[个人信息]"), "{path}: {}", hidden.body);
        let shown = mine.get(path).await;
        assert!(shown.body.contains("13800000000") && !shown.body.contains("[个人信息]"), "{path}: {}", shown.body);
    }
    let hidden = theirs.get("/instances/demand-1").await;
    assert_eq!(hidden.status, StatusCode::OK);
    assert!(!hidden.body.contains("13800000000") && !hidden.body.contains("张三"), "{}", hidden.body);
    let notice = theirs.get("/instances/demand-1/notice").await;
    assert!(!notice.body.contains("张三"), "{}", notice.body);
    assert!(notice.body.contains("[个人信息]:"), "{}", notice.body);
    assert!(mine.get("/instances/demand-1/notice").await.body.contains("张三:"));
    env.finish().await;
}

/// R6.2: a resident's name and phone (personal fields of 诉求受理) are redacted on the pages and
/// exports and on the live stream for a community not bound to the demand; the bound community
/// sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r6_2_pages_exports_and_stream_redact_personal_for_an_unbound_office() {
    r6_2_pages_redact(PagesEnv::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r6_2_pages_exports_and_stream_redact_personal_for_an_unbound_office_on_postgres() {
    if let Some(env) = PagesEnv::start_postgres("redact").await {
        r6_2_pages_redact(env).await;
    }
}

/// R0.3, R2.3 on the pages: the next term needs the members counted afresh, so it is a task for
/// the street's election group; the instance page shows it the form with exactly that parameter,
/// a bad number is refused with the rule's words and nothing is recorded, and a good one starts
/// `ID~2` with the community carried over and the due date as its start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r0_3_the_next_cycle_is_started_from_the_instance_page() {
    const TERM: &str = r#"
policy 换届演练 {
  param 社区名称: text
  param 开始: date = 2012-01-01
  param 党员人数: int >= 1
  role 街道选举领导小组
  role 社区党组织
  step 选举: task { by 社区党组织 }
  recur every 3 years from end(选举) carry 社区名称 dated 开始 by 街道选举领导小组
}"#;
    let env = PagesEnv::start().await;
    let api = |method: reqwest::Method, path: &str| {
        env.client.request(method, format!("{}{path}", env.base)).bearer_auth(&env.admin)
    };
    let r = api(reqwest::Method::POST, "/v1/policies").header("content-type", "text/plain").body(TERM).send().await;
    assert_eq!(r.unwrap().status(), StatusCode::CREATED);
    let start = json!({ "policy": "换届演练", "id": "term-1", "params": { "社区名称": "舜耕社区", "党员人数": 60 } });
    assert_eq!(
        api(reqwest::Method::POST, "/v1/instances").json(&start).send().await.unwrap().status(),
        StatusCode::CREATED
    );
    let party = env.token("王书记", "舜耕社区党委", "社区党组织").await;
    let done = json!({ "action": "complete", "data": { "report": "选举完成" } });
    let r = env
        .client
        .post(format!("{}/v1/instances/term-1/steps/{}/actions", env.base, q("选举")))
        .bearer_auth(&party)
        .json(&done)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Done on 2012-03-21: the next term is due at 00:00 of 2015-03-22.
    let clock = json!({ "advance_to": "2015-03-23T09:00:00+08:00" });
    assert_eq!(
        api(reqwest::Method::POST, "/v1/admin/clock").json(&clock).send().await.unwrap().status(),
        StatusCode::OK
    );

    let group = env.token("刘组长", "舜耕街道办事处", "街道选举领导小组").await;
    let mut street = Browser::new(&env);
    street.sign_in(&group).await;
    let inbox = street.get("/inbox").await;
    assert!(inbox.body.contains("/instances/term-1#next-cycle-form"), "{}", inbox.body);
    let page = street.get("/instances/term-1").await;
    assert!(page.body.contains("id=\"next-cycle-form\""), "{}", page.body);
    assert!(page.body.contains("name=\"f.党员人数\""), "{}", page.body);
    assert!(!page.body.contains("name=\"f.社区名称\""), "carried over, not asked: {}", page.body);
    assert!(!page.body.contains("name=\"f.开始\""), "the due date, not asked: {}", page.body);
    // The community's party organisation does not get the form.
    let mut community = Browser::new(&env);
    community.sign_in(&party).await;
    assert!(!community.get("/instances/term-1").await.body.contains("next-cycle-form"));

    let before = env.history("term-1").await.len();
    let csrf = hidden(&page.body, "csrf");
    let key = hidden(&page.body, "key");
    let action = format!("/instances/{}/next-cycle", q("term-1"));
    let form = |members: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("key", key.clone()),
            ("role", "街道选举领导小组".to_string()),
            ("f.党员人数", members.to_string()),
        ]
    };
    let bad: Vec<(&str, String)> = form("0");
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = street.post(&action, &bad).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    assert!(refused.body.contains("id=\"refusal\""), "{}", refused.body);
    assert!(refused.body.contains("党员人数"), "{}", refused.body);
    assert!(refused.body.contains("value=\"0\""), "what was entered is kept: {}", refused.body);
    assert_eq!(env.history("term-1").await.len(), before, "a refusal records nothing");

    let good: Vec<(&str, String)> = form("64");
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let started = street.post(&action, &good).await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    assert_eq!(started.location.as_deref(), Some("/instances/term-1"));
    let next: Value = api(reqwest::Method::GET, &format!("/v1/instances/{}", q("term-1~2")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(next["status"], "running", "{next}");
    assert_eq!(next["cycle"], 2);
    assert_eq!(next["previous"], "term-1");
    assert_eq!(next["params"]["党员人数"], 64);
    assert_eq!(next["params"]["社区名称"], "舜耕社区");
    assert_eq!(next["params"]["开始"], "2015-03-22");
    // Started: the form is gone, the page links the new term.
    let page = street.get("/instances/term-1").await;
    assert!(!page.body.contains("next-cycle-form"), "{}", page.body);
    assert!(page.body.contains("id=\"next-cycle\""), "{}", page.body);
    env.finish().await;
}

/// Issue 9.4: revoking a principal's token, or changing its roles, ends its web sessions at
/// once (the next page sends to the sign-in page); an expired token cannot sign in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_or_changing_roles_ends_the_web_session_at_once() {
    let env = PagesEnv::start().await;
    let wang = env.token("王书记", "街道党工委", "街道党工委").await;
    let mut b = Browser::new(&env);
    assert_eq!(b.sign_in(&wang).await.status, StatusCode::SEE_OTHER);
    assert_eq!(b.get("/inbox").await.status, StatusCode::OK);
    // Revoked through the admin API: the very next page is the sign-in page.
    let revoked = env
        .client
        .delete(format!("{}/v1/admin/tokens/{}", env.base, q("王书记")))
        .bearer_auth(&env.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(revoked.json::<serde_json::Value>().await.unwrap(), json!({ "principal": "王书记", "revoked": 1 }));
    let p = b.get("/inbox").await;
    assert_eq!((p.status, p.location.as_deref()), (StatusCode::SEE_OTHER, Some("/signin")));
    assert_eq!(b.sign_in(&wang).await.status, StatusCode::UNAUTHORIZED);

    // A principal's roles changed (a new token for it with other roles): its session ends too.
    let li = env.token("李书记", "东湖社区", "社区党组织").await;
    let mut c = Browser::new(&env);
    assert_eq!(c.sign_in(&li).await.status, StatusCode::SEE_OTHER);
    assert_eq!(c.get("/inbox").await.status, StatusCode::OK);
    env.token("李书记", "东湖社区", "社区居民选举委员会").await;
    let p = c.get("/inbox").await;
    assert_eq!((p.status, p.location.as_deref()), (StatusCode::SEE_OTHER, Some("/signin")));

    // A token that expired signs in nowhere.
    let store = env.server.state.store.clone();
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(300);
    let zhao = civicflow::http::auth::create_token_until(store.as_ref(), "赵", "区纪委", &["监督".into()], Some(soon))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let mut d = Browser::new(&env);
    assert_eq!(d.sign_in(&zhao).await.status, StatusCode::UNAUTHORIZED);
    env.finish().await;
}

/// Issue 9.6: web sessions live in the store, so a second node (or the same one restarted)
/// knows a session another made, and signing out on one ends it on all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_on_one_node_is_known_to_another_and_ends_everywhere() {
    let env = PagesEnv::start().await;
    let wang = env.token("王书记", "街道党工委", "街道党工委").await;
    let mut b = Browser::new(&env);
    assert_eq!(b.sign_in(&wang).await.status, StatusCode::SEE_OTHER);
    let cookies = b.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");

    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), Database::Store(env.server.state.store.clone()));
    config.publish_bundled = false;
    config.simulated_clock = Some(chrono::DateTime::parse_from_rfc3339("2012-03-21T09:00:00+08:00").unwrap().into());
    let other = Server::start(config).await.unwrap();
    let other_base = format!("http://{}", other.addr);
    let inbox = |base: String| {
        let client = env.client.clone();
        let cookies = cookies.clone();
        async move { client.get(format!("{base}/inbox")).header(COOKIE, cookies).send().await.unwrap() }
    };
    let there = inbox(other_base.clone()).await;
    assert_eq!(there.status(), StatusCode::OK, "the other node knows the session");
    assert!(there.text().await.unwrap().contains("王书记"));

    // Signing out on the other node ends it here too.
    let page = inbox(other_base.clone()).await.text().await.unwrap();
    let csrf = hidden(&page, "csrf");
    let out = env
        .client
        .post(format!("{other_base}/signout"))
        .header(COOKIE, cookies.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let here = inbox(env.base.clone()).await;
    assert_eq!(here.status(), StatusCode::SEE_OTHER);
    assert_eq!(here.headers().get(LOCATION).unwrap(), "/signin");
    other.stop().await;
    env.finish().await;
}

/// Issue 12.6: the oversight page draws who was late as SVG (no JavaScript) and exports the
/// breaches as CSV; it is for oversight roles and admins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversight_sees_late_offices_as_charts_and_csv() {
    let env = PagesEnv::start().await;
    env.publish(crate::http_oversight::LATE_POLICY).await;
    for (id, community) in [("d-2", "东湖社区"), ("w-1", "西湖社区")] {
        let body = json!({ "policy": "超时演练", "id": id, "params": { "社区名称": community } });
        env.start_with(body).await;
    }
    env.advance_to("2012-03-30T09:00:00+08:00").await;
    let zhao = env.token("纪委-赵", "街道纪工委", "纪委").await;
    let clerk = env.token("东湖-王", "东湖社区", "社区居委会").await;

    let mut o = Browser::new(&env);
    assert_eq!(o.sign_in(&zhao).await.status, StatusCode::SEE_OTHER);
    let page = o.get("/oversight?from=2012-03-01&to=2012-03-31").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("id=\"total\">2<"), "{}", page.body);
    for part in [
        "<svg id=\"by-office\"",
        "<title>东湖社区: 1</title>",
        "<title>西湖社区: 1</title>",
        "<svg id=\"by-week\"",
        "<title>2012-03-19: 2</title>",
        "<title>超时演练: 2</title>",
    ] {
        assert!(page.body.contains(part), "{part} missing in {}", page.body);
    }
    assert!(!page.body.contains("<script"), "no JavaScript");
    assert!(page.body.contains("<td>东湖社区</td><td>超时演练</td><td>1</td>"), "{}", page.body);
    let csv = o.get("/oversight.csv?from=2012-03-01&to=2012-03-31").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.body.lines().count(), 3, "{}", csv.body);
    // A bad day is refused with its words; a clerk gets 403.
    let bad = o.get("/oversight?from=03/01/2012").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("&#x60;from&#x60; is a day, YYYY-MM-DD, not &#x60;03/01/2012&#x60;"), "{}", bad.body);
    let mut c = Browser::new(&env);
    assert_eq!(c.sign_in(&clerk).await.status, StatusCode::SEE_OTHER);
    assert_eq!(c.get("/oversight").await.status, StatusCode::FORBIDDEN);
    env.finish().await;
}
