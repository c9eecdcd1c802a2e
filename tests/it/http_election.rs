//! The bundled election (`policies/election.cf`, R2.1–R2.18), published on the server's first
//! start, run whole through HTTP by one principal per role of the policy, on the simulated clock
//! (`POST /v1/admin/clock`), from `POST /v1/instances` to `completed`.
//!
//! The acts, forms, votes and clock moves are those of the in-memory happy path
//! (`policies/tests/it/scenarios/election.rs`, `r2_2_happy_path_2012_from_preparation_to_the_summary`).
//! Every act and every refusal is also run on `civicflow_engine::sim::Simulation` with the same
//! policy, side by side: the events of each act, the refusal codes and words, and at the end the
//! whole history (kind, instant and payload of every event, in order) must agree between the
//! durable and the in-memory runs.
//!
//! Two instances run in lockstep on one server: `east` is the happy path's community (60 party
//! members, 5 + 5 seats, 3000 voters); `north` has 100 party members (7 seats) and 500 voters, for
//! the quorum boundaries of R2.14 (80 of 100 refused, 81 accepted) and R2.16 (250 of 500 refused,
//! 251 accepted). The same drive runs on SQLite and on PostgreSQL (a schema of its own;
//! `CIVICFLOW_TEST_PG_URL`; skipped when unreachable, failed when `CI=true`).
//!
//! Last, a graceful stop with requests in flight (SQLite and PostgreSQL): they are answered, the
//! port closes.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::{AssertSqlSafe, PgPool};

use civicflow::http::auth::create_token;
use civicflow::serve::{Config, Database, Server};
use civicflow_dsl::value::from_json;
use civicflow_engine::calendar::Calendar;
use civicflow_engine::clock::SimulatedClock;
use civicflow_engine::core::{Action, Actor, Event, Tally, VoteCounts};
use civicflow_engine::runtime::Runtime;
use civicflow_engine::sim::Simulation;
use civicflow_engine::store::postgres::PgStore;
use civicflow_engine::store::sqlite::SqliteStore;
use civicflow_engine::store::{GroupCommitConfig, GroupCommitter, InstanceFilter, Store};

// ---- the policy's roles, one principal each ----

/// (role, principal, office): every principal holds exactly one role.
const PRINCIPALS: [(&str, &str, &str); 7] = [
    ("街道党工委", "王书记", "舜耕街道党工委"),
    ("街道选举领导小组", "刘组长", "舜耕街道办事处"),
    ("区民政局", "赵科长", "历下区民政局"),
    // R6.1: the community's bodies are bound to the community that elects (`社区名称`).
    ("社区党组织", "李书记", "舜耕社区"),
    ("社区居委会", "陈主任", "舜耕社区"),
    ("社区居民选举委员会", "周委员", "舜耕社区"),
    ("居民代表会议", "孙代表", "舜耕社区"),
];

const PARTY: &str = "正式选举/党组织换届";
const RESIDENTS: &str = "正式选举/居委会换届";
const OVERSIGHT: &str = "正式选举/监督委员会换届";

fn p(step: &str) -> String {
    format!("{PARTY}/{step}")
}

fn r(step: &str) -> String {
    format!("{RESIDENTS}/{step}")
}

fn o(step: &str) -> String {
    format!("{OVERSIGHT}/{step}")
}

// ---- the harness: a server on a loopback port ----

enum Backend {
    Sqlite { store: SqliteStore, _dir: tempfile::TempDir },
    Postgres { store: PgStore, admin: PgPool, schema: String },
}

struct Env {
    server: Server,
    backend: Backend,
    client: reqwest::Client,
    base: String,
    admin: String,
}

struct Reply {
    status: StatusCode,
    body: Value,
}

impl Env {
    async fn start(store: Arc<dyn Store>, backend: Backend) -> Env {
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut config = Config::new(listen, Database::Store(store));
        config.simulated_clock = Some(instant("2012-03-21 09:00"));
        config.publish_bundled = true;
        // The timer service polls often, so its rounds race the rounds after each clock move (which
        // once returned before the timers the service had claimed were fired: the next read saw a
        // publicity period still open).
        config.timer_interval = Duration::from_millis(2);
        let server = Server::start(config).await.unwrap();
        assert!(server.published.contains(&"election"), "{:?}", server.published);
        let admin = server.admin_token.clone().expect("an admin token on first start");
        let base = format!("http://{}", server.addr);
        Env { server, backend, client: reqwest::Client::new(), base, admin }
    }

    async fn sqlite() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("civicflow.db")).await.unwrap();
        Env::start(Arc::new(store.clone()), Backend::Sqlite { store, _dir: dir }).await
    }

    /// A server on a fresh PostgreSQL schema, or `None` (after a SKIP line) when unreachable
    /// outside CI.
    async fn postgres(test: &str) -> Option<Env> {
        let crate::pg::Schema { admin, name: schema, options } =
            crate::pg::fresh_schema("http_election", "httpel", test).await?;
        let store = PgStore::connect_with(options, 8).await.unwrap();
        Some(Env::start(Arc::new(store.clone()), Backend::Postgres { store, admin, schema }).await)
    }

    async fn finish(self) {
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

    async fn send(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply { status, body }
    }

    async fn get(&self, path: &str) -> Value {
        let r = self.send(reqwest::Method::GET, path, &self.admin, None).await;
        assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.body);
        r.body
    }

    async fn instance(&self, id: &str) -> Value {
        self.get(&format!("/v1/instances/{id}")).await
    }

    /// The whole history, page by page.
    async fn history(&self, id: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self.get(&format!("/v1/instances/{id}/history?after={after}&limit=100")).await;
            out.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next_after"].as_u64() {
                Some(next) => after = next,
                None => return out,
            }
        }
    }
}

// ---- times: local (Asia/Shanghai) as in the in-memory scenarios ----

fn zone() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap()
}

fn instant(local: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").unwrap();
    zone().from_local_datetime(&naive).unwrap().with_timezone(&Utc)
}

/// RFC 3339 with `Z`, as the API writes instants.
fn z(local: &str) -> String {
    instant(local).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

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

fn step_of(view: &Value, step: &str) -> Value {
    view["steps"].as_array().unwrap().iter().find(|s| s["id"] == step).cloned().unwrap_or(Value::Null)
}

// ---- act bodies (the JSON the API takes) ----

fn done(report: &str) -> Value {
    json!({ "action": "complete", "data": { "report": report } })
}

fn approve() -> Value {
    json!({ "action": "approve" })
}

fn reject(reason: &str) -> Value {
    json!({ "action": "reject", "data": { "reason": reason } })
}

fn file() -> Value {
    json!({ "action": "file" })
}

fn form(data: Value) -> Value {
    json!({ "action": "submit_form", "data": data })
}

fn ballots(present: u64, cast: u64, invalid: u64, tallies: &[(&str, u64)]) -> Value {
    let tallies: Vec<Value> = tallies.iter().map(|(c, v)| json!({ "candidate": c, "votes": v })).collect();
    json!({ "action": "enter_vote", "data": { "present": present, "cast": cast, "invalid": invalid, "tallies": tallies } })
}

/// The same body as the engine's action, the form read with the policy's field types (as the
/// API reads it).
fn to_action(s: &Simulation, step: &str, body: &Value) -> Action {
    let data = &body["data"];
    let text = |f: &str| data[f].as_str().unwrap_or_default().to_string();
    match body["action"].as_str().unwrap() {
        "submit_form" => {
            let def = &s.state.nodes[step].def;
            let node = s.program.node(def).unwrap();
            let fields = data.as_object().unwrap().iter().map(|(name, j)| {
                let field = node.form.iter().find(|f| &f.name == name).unwrap();
                (name.clone(), from_json(&field.ty, j).unwrap())
            });
            Action::SubmitForm { data: fields.collect() }
        }
        "complete" => Action::Complete { report: text("report") },
        "approve" => Action::Approve { comment: None },
        "reject" => Action::Reject { reason: text("reason") },
        "file" => Action::File { comment: None },
        "enter_vote" => Action::EnterVote {
            counts: VoteCounts {
                present: data["present"].as_u64().unwrap(),
                cast: data["cast"].as_u64().unwrap(),
                invalid: data["invalid"].as_u64().unwrap(),
                tallies: data["tallies"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| Tally {
                        candidate: t["candidate"].as_str().unwrap().into(),
                        votes: t["votes"].as_u64().unwrap(),
                    })
                    .collect(),
            },
        },
        other => panic!("no such action in the drive: {other}"),
    }
}

// ---- the drive: every act through HTTP and in memory ----

/// One instance: its id, its parameters, and its in-memory twin.
struct Run {
    id: &'static str,
    setup: Setup,
    sim: Simulation,
}

#[derive(Clone, Copy)]
struct Setup {
    members: i64,
    party_seats: i64,
    voters: i64,
}

const EAST: usize = 0;
const NORTH: usize = 1;

struct Driver {
    env: Env,
    tokens: BTreeMap<&'static str, String>,
    runs: Vec<Run>,
    /// How many acts and refusals were sent.
    acts: usize,
}

fn actor(role: &str) -> Actor {
    let (_, principal, office) = PRINCIPALS.iter().find(|(r, _, _)| *r == role).unwrap();
    Actor { principal: principal.to_string(), office: office.to_string(), role: role.to_string() }
}

impl Driver {
    async fn new(env: Env) -> Driver {
        let mut tokens = BTreeMap::new();
        for (role, principal, office) in PRINCIPALS {
            let token =
                create_token(env.server.state.store.as_ref(), principal, office, &[role.to_string()]).await.unwrap();
            tokens.insert(role, token);
        }
        Driver { env, tokens, runs: Vec::new(), acts: 0 }
    }

    /// Starts an instance of the bundled election through HTTP (as the street's leading group)
    /// and its twin in memory.
    async fn start(&mut self, id: &'static str, setup: Setup) {
        let params = json!({
            "社区名称": "舜耕社区",
            "党员人数": setup.members,
            "户数": 2000,
            "单位数": 20,
            "党组织席位": setup.party_seats,
            "居委会席位": 5,
            "监督委员会席位": 7,
        });
        let body = json!({ "policy": "election", "params": params, "id": id });
        let r =
            self.env.send(reqwest::Method::POST, "/v1/instances", &self.tokens["街道选举领导小组"], Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["instance"], id);

        let bundled = civicflow_policies::get("election").unwrap();
        let mut sim = Simulation::new(bundled.source, "2012-03-21 09:00").unwrap();
        let program = &sim.program;
        let params: Vec<(String, civicflow_dsl::value::Value)> = params
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, j)| {
                let ty = &program.policy.params.iter().find(|p| &p.id == k).unwrap().ty;
                (k.clone(), from_json(ty, j).unwrap())
            })
            .collect();
        let params: Vec<(&str, civicflow_dsl::value::Value)> =
            params.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let events = sim.start(&params).unwrap();
        assert_eq!(kinds_of(&r.body), events.iter().map(Event::kind).collect::<Vec<_>>(), "the start of {id}");
        self.runs.push(Run { id, setup, sim });
    }

    /// Moves both clocks (the server's, every twin's) to a local time.
    async fn advance(&mut self, local: &str) {
        for run in &mut self.runs {
            run.sim.advance_to(local).unwrap();
        }
        let body = json!({ "advance_to": z(local) });
        let r = self.env.send(reqwest::Method::POST, "/v1/admin/clock", &self.env.admin, Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }

    /// An act that both runs accept, recording the same events.
    async fn act(&mut self, run: usize, role: &str, step: &str, body: Value) -> Value {
        self.acts += 1;
        let id = self.runs[run].id;
        let path = format!("/v1/instances/{id}/steps/{}/actions", enc(step));
        let r = self.env.send(reqwest::Method::POST, &path, &self.tokens[role], Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::OK, "{id}: {role} on {step}: {}", r.body);
        let sim = &mut self.runs[run].sim;
        let action = to_action(sim, step, &body);
        let events = sim.act_as(actor(role), step, action).unwrap_or_else(|e| panic!("in memory, {step}: {e}"));
        assert_eq!(kinds_of(&r.body), events.iter().map(Event::kind).collect::<Vec<_>>(), "{id}: {role} on {step}");
        for e in r.body["events"].as_array().unwrap() {
            assert_eq!((e["actor"].as_str(), e["role"].as_str()), (Some(actor(role).principal.as_str()), Some(role)));
        }
        r.body
    }

    /// An act that both runs refuse with the same code and words; nothing is recorded.
    async fn refuse(
        &mut self,
        run: usize,
        role: &str,
        step: &str,
        body: Value,
        status: StatusCode,
        code: &str,
    ) -> Value {
        self.acts += 1;
        let id = self.runs[run].id;
        let before = self.env.history(id).await.len();
        let path = format!("/v1/instances/{id}/steps/{}/actions", enc(step));
        let r = self.env.send(reqwest::Method::POST, &path, &self.tokens[role], Some(body.clone())).await;
        assert_eq!(r.status, status, "{id}: {role} on {step}: {}", r.body);
        assert_eq!(r.body["code"], code, "{}", r.body);
        let sim = &mut self.runs[run].sim;
        let action = to_action(sim, step, &body);
        let history = sim.history.len();
        let refusal = sim.act_as(actor(role), step, action).unwrap_err();
        assert_eq!(refusal.code(), code);
        assert_eq!(r.body["detail"], refusal.to_string(), "the durable and in-memory words differ");
        assert_eq!(sim.history.len(), history);
        assert_eq!(self.env.history(id).await.len(), before, "a refusal records nothing");
        r.body
    }

    fn sim(&self, run: usize) -> &Simulation {
        &self.runs[run].sim
    }
}

fn kinds_of(result: &Value) -> Vec<&str> {
    result["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

// ---- the happy path's data ----

const POOL: [&str; 11] = ["王建国", "李红梅", "张志强", "刘芳", "陈伟", "杨帆", "赵敏", "黄磊", "周洁", "吴涛", "郑丽"];
const RC: [&str; 7] = ["孙立", "马丽", "朱军", "胡静", "郭强", "何平", "高峰"];
const RC_ELECTED: [&str; 5] = ["孙立", "马丽", "朱军", "胡静", "郭强"];
const OC: [&str; 8] = ["罗成", "梁红", "宋佳", "谢明", "唐亮", "韩雪", "冯刚", "曹颖"];

/// A nomination: a 45-year-old member nominated by 12 party members, with no exclusion.
fn nomination(changes: &[(&str, Value)]) -> Value {
    let mut data = json!({
        "被推荐人": "王建国", "推荐岗位": "委员", "联名推荐": true, "联名党员人数": 12, "联名居民人数": 0,
        "本人同意": true, "年龄": 45, "新进人员": false, "荣誉放宽": false, "受过刑事处罚": false,
        "刑满已满年数": 0, "受过劳教": false, "解除劳教已满年数": 0, "违反计划生育": false,
        "计生已处理": false, "计生处理已满年数": 0, "涉黑涉恶受处理": false, "涉黑涉恶处理已满年数": 0,
        "具有行为能力": true,
    });
    for (k, v) in changes {
        data[*k] = v.clone();
    }
    form(data)
}

fn candidate() -> Value {
    form(json!({
        "被提名人": "孙立", "提名岗位": "主任", "年龄": 48, "新进人员": false, "荣誉放宽": false,
        "受过刑事处罚": false, "刑满已满年数": 0, "受过劳教": false, "解除劳教已满年数": 0,
        "违反计划生育": false, "计生已处理": false, "计生处理已满年数": 0, "涉黑涉恶受处理": false,
        "涉黑涉恶处理已满年数": 0, "具有行为能力": true,
    }))
}

fn names(items: &[&str]) -> Value {
    json!(items)
}

/// ceil(seats × 13/10) and ceil(seats × 6/5).
fn slates(seats: i64) -> (usize, usize) {
    (((seats * 13 + 9) / 10) as usize, ((seats * 6 + 4) / 5) as usize)
}

/// The party assembly's votes of a run: the committee, then the secretary and deputy.
fn party_ballots(setup: Setup) -> (Value, Value) {
    if setup.party_seats == 5 {
        let six = [("王建国", 50), ("李红梅", 48), ("张志强", 45), ("刘芳", 40), ("陈伟", 30), ("杨帆", 20)];
        (ballots(55, 55, 1, &six), ballots(55, 55, 0, &[("王建国", 52), ("李红梅", 50)]))
    } else {
        let nine: Vec<(&str, u64)> =
            POOL[..9].iter().zip([70, 66, 60, 55, 50, 45, 41, 40, 10]).map(|(n, v)| (*n, v)).collect();
        (ballots(81, 81, 0, &nine), ballots(81, 81, 0, &[("王建国", 70), ("李红梅", 60)]))
    }
}

/// The residents' vote of a run: 3000 voters (the happy path's), or 500 with 251 casting.
fn residents_ballots(setup: Setup) -> Value {
    if setup.voters == 3000 {
        let tallies = [("孙立", 2000), ("马丽", 1900), ("朱军", 1800), ("胡静", 1700), ("郭强", 1300), ("何平", 900)];
        ballots(2600, 2500, 20, &tallies)
    } else {
        let tallies = [("孙立", 200), ("马丽", 190), ("朱军", 180), ("胡静", 170), ("郭强", 126), ("何平", 100)];
        ballots(251, 251, 0, &tallies)
    }
}

// ---- the election ----

/// The statuses of every node of a twin, as the API words them.
fn statuses(s: &Simulation) -> BTreeMap<String, String> {
    s.state
        .nodes
        .iter()
        .map(|(k, n)| (k.clone(), serde_json::to_value(n.status).unwrap().as_str().unwrap().to_string()))
        .collect()
}

async fn election(env: Env) {
    let mut d = Driver::new(env).await;
    d.start("east", Setup { members: 60, party_seats: 5, voters: 3000 }).await;
    d.start("north", Setup { members: 100, party_seats: 7, voters: 500 }).await;
    let n = d.runs.len();

    let east = d.env.instance("east").await;
    // R2.4–R2.7: the sizes derived from the parameters, in the instance's values.
    let sizes = |v: &Value| -> Vec<Value> {
        [
            "党组织类型",
            "党组织职数下限",
            "党组织职数上限",
            "书记副书记职数",
            "居委会职数下限",
            "居委会职数上限",
            "居民代表下限",
            "单位代表下限",
            "单位代表上限",
        ]
        .iter()
        .map(|k| v["values"][*k].clone())
        .collect()
    };
    assert_eq!(
        sizes(&east),
        [json!("党总支"), json!(5), json!(7), json!(2), json!(3), json!(5), json!(55), json!(2), json!(6)]
    );
    let north = d.env.instance("north").await;
    assert_eq!(
        sizes(&north),
        [json!("党委"), json!(7), json!(9), json!(2), json!(3), json!(5), json!(55), json!(2), json!(6)]
    );

    // 选前准备, 03-21 … 03-26.
    for i in 0..n {
        d.act(i, "街道党工委", "选前准备/成立工作机构", done("成立领导小组及办公室")).await;
    }
    d.advance("2012-03-22 10:00").await;
    for i in 0..n {
        d.act(i, "街道选举领导小组", "选前准备/制定工作方案", form(json!({ "方案": "换届选举工作方案" }))).await;
    }
    d.advance("2012-03-26 10:00").await;
    for i in 0..n {
        d.act(i, "街道选举领导小组", "选前准备/动员部署", form(json!({}))).await;
        d.act(i, "街道选举领导小组", "选前准备/集中培训", done("培训选举工作人员")).await;
    }

    // The party organisation: nomination to the approved slate, 04-01 … 04-16.
    d.advance("2012-04-01 09:00").await;
    // R2.8: 9 party members and 49 residents are not enough; refused with the policy's words.
    let r28 = d
        .refuse(
            EAST,
            "社区党组织",
            &p("公开推荐"),
            nomination(&[("联名党员人数", json!(9)), ("联名居民人数", json!(49))]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "F013",
        )
        .await;
    assert_eq!(r28["detail"], format!("step `{}`: R2.8 联名推荐须有10名以上党员或50名以上居民群众联名", p("公开推荐")));
    assert_eq!(r28["rule"], "R2.8");
    for i in 0..n {
        d.act(i, "社区党组织", &p("公开推荐"), nomination(&[])).await;
    }
    d.advance("2012-04-05 10:00").await;
    for i in 0..n {
        d.act(i, "街道党工委", &p("资格审查"), approve()).await;
    }
    // The 3-day notice of the review ends on 04-08 10:00 by itself (a timer).
    d.advance("2012-04-09 10:00").await;
    assert_eq!(step_of(&d.env.instance("east").await, &p("资格公示"))["status"], "done");
    for i in 0..n {
        let (initial, _) = slates(d.runs[i].setup.party_seats);
        d.act(
            i,
            "街道党工委",
            &p("民主推荐会"),
            form(json!({ "参会人数": 100, "代表人数": 30, "最长介绍材料字数": 1500 })),
        )
        .await;
        if i == EAST {
            // R2.11: 6 names for 5 seats are one short of ceil(5 × 13/10) = 7.
            let r211 = d
                .refuse(
                    i,
                    "社区党组织",
                    &p("确定初步人选"),
                    form(json!({ "初步人选名单": names(&POOL[..6]) })),
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "F013",
                )
                .await;
            assert_eq!(r211["rule"], "R2.11", "{r211}");
        }
        d.act(i, "社区党组织", &p("确定初步人选"), form(json!({ "初步人选名单": names(&POOL[..initial]) }))).await;
    }
    d.advance("2012-04-10 10:00").await;
    for i in 0..n {
        d.act(i, "街道党工委", &p("组织考察"), done("考察合格")).await;
    }
    d.advance("2012-04-13 10:00").await;
    for i in 0..n {
        let (_, final_) = slates(d.runs[i].setup.party_seats);
        if i == EAST {
            // R2.12: 5 names for 5 seats are one short of ceil(5 × 6/5) = 6.
            let r212 = d
                .refuse(
                    i,
                    "社区党组织",
                    &p("确定预备人选"),
                    form(json!({ "预备人选名单": names(&POOL[..5]) })),
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "F013",
                )
                .await;
            assert_eq!(r212["rule"], "R2.12", "{r212}");
        }
        d.act(i, "社区党组织", &p("确定预备人选"), form(json!({ "预备人选名单": names(&POOL[..final_]) }))).await;
    }
    d.advance("2012-04-16 10:00").await;
    for i in 0..n {
        d.act(i, "街道党工委", &p("预备人选审批"), approve()).await;
    }
    // The per-procedure sizes of R2.11 and R2.12.
    let east = d.env.instance("east").await;
    assert_eq!((&east["values"][p("初步人选下限")], &east["values"][p("预备人选下限")]), (&json!(7), &json!(6)));
    let north = d.env.instance("north").await;
    assert_eq!((&north["values"][p("初步人选下限")], &north["values"][p("预备人选下限")]), (&json!(10), &json!(9)));
    // R2.1: the residents' committee waits for the party organisation: 409, with the state.
    let r21 = d
        .refuse(
            EAST,
            "社区居委会",
            &r("推选成员代表"),
            form(json!({ "居民代表人数": 55, "单位代表人数": 6 })),
            StatusCode::CONFLICT,
            "F005",
        )
        .await;
    assert_eq!(step_of(&r21["state"], &r("推选成员代表"))["status"], "waiting", "{r21}");
    assert_eq!(step_of(&r21["state"], PARTY)["status"], "open", "{r21}");

    // The party assembly, 04-18 … 04-19.
    d.advance("2012-04-18 10:00").await;
    for i in 0..n {
        let setup = d.runs[i].setup;
        let (committee, chiefs) = party_ballots(setup);
        if i == EAST {
            // R2.12: the vote's own slate rule (差额, at least 6 candidates for 5 seats).
            let five = [("王建国", 50), ("李红梅", 48), ("张志强", 45), ("刘芳", 40), ("陈伟", 30)];
            let r212 = d
                .refuse(
                    i,
                    "社区党组织",
                    &p("差额选举委员"),
                    ballots(55, 55, 0, &five),
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "F015",
                )
                .await;
            // The slate's words in the policy name the DOMAIN rule, and the problem names it too.
            assert_eq!(r212["rule"], "R2.12", "{r212}");
        } else {
            // R2.14: 80 of 100 members present is not a quorum; 81 is.
            let mut short = committee.clone();
            short["data"]["present"] = json!(80);
            short["data"]["cast"] = json!(80);
            let r214 =
                d.refuse(i, "社区党组织", &p("差额选举委员"), short, StatusCode::UNPROCESSABLE_ENTITY, "F014").await;
            assert!(r214["detail"].as_str().unwrap().contains("at least 81 present needed"), "{r214}");
            assert_eq!(r214["rule"], "R2.14", "{r214}");
        }
        d.act(i, "社区党组织", &p("差额选举委员"), committee).await;
        d.act(i, "社区党组织", &p("等额选举书记副书记"), chiefs).await;
        if i == EAST {
            // R2.18: a filing cannot be rejected.
            d.refuse(i, "街道党工委", &p("委员备案"), reject("不同意"), StatusCode::UNPROCESSABLE_ENTITY, "F010").await;
        }
        let members = if setup.party_seats == 5 { names(&POOL[..5]) } else { names(&POOL[..7]) };
        d.act(i, "街道党工委", &p("委员备案"), form(json!({ "当选委员名单": members, "男性委员人数": 3 }))).await;
        d.act(i, "街道党工委", &p("委员备案"), file()).await;
    }
    d.advance("2012-04-19 10:00").await;
    for i in 0..n {
        // R2.18: the approval can reject; here it approves.
        d.act(i, "街道党工委", &p("书记副书记批准"), approve()).await;
        d.act(i, "社区党组织", &p("张榜公布"), done("选举结果已张榜公布")).await;
    }
    let east = d.env.instance("east").await;
    assert_eq!(step_of(&east, &p("委员备案"))["outcome"], "filed");
    assert_eq!(step_of(&east, &p("书记副书记批准"))["outcome"], "approved");
    assert_eq!(step_of(&east, PARTY)["status"], "done");
    assert_eq!(step_of(&east, &r("推选成员代表"))["status"], "open");

    // The residents' committee up to its formal candidates, 04-20.
    d.advance("2012-04-20 10:00").await;
    for i in 0..n {
        let voters = d.runs[i].setup.voters;
        d.act(i, "社区居委会", &r("推选成员代表"), form(json!({ "居民代表人数": 55, "单位代表人数": 6 }))).await;
        d.act(i, "居民代表会议", &r("推选选举委员会"), form(json!({ "选举委员会人数": 7 }))).await;
        d.act(i, "社区居民选举委员会", &r("起草选举办法"), done("选举办法草案")).await;
        d.act(i, "居民代表会议", &r("通过选举办法"), approve()).await;
        d.act(i, "社区居民选举委员会", &r("选民登记"), form(json!({ "登记选民人数": voters }))).await;
        d.act(i, "社区居民选举委员会", &r("候选人提名"), candidate()).await;
        for role in ["街道选举领导小组", "社区党组织", "居民代表会议"] {
            d.act(i, role, &r("候选人审查"), approve()).await;
        }
        d.act(i, "社区居民选举委员会", &r("确定正式候选人"), form(json!({ "正式候选人名单": names(&RC[..6]) }))).await;
        d.act(i, "社区居民选举委员会", &r("介绍候选人"), done("张榜介绍候选人")).await;
    }
    // The mid-point for `as_of`: what the twins hold now.
    let mid = "2012-04-20 12:00";
    let mid_statuses: Vec<BTreeMap<String, String>> = d.runs.iter().map(|run| statuses(&run.sim)).collect();

    // The residents' vote, 04-27, its results filed and certified.
    d.advance("2012-04-27 10:00").await;
    for i in 0..n {
        let setup = d.runs[i].setup;
        if i == NORTH {
            // R2.16: 250 of 500 voters casting is not more than half; 251 is.
            let mut short = residents_ballots(setup);
            short["data"]["present"] = json!(250);
            short["data"]["cast"] = json!(250);
            let r216 = d
                .refuse(i, "社区居民选举委员会", &r("投票选举"), short, StatusCode::UNPROCESSABLE_ENTITY, "F014")
                .await;
            assert!(r216["detail"].as_str().unwrap().contains("at least 251 ballots needed"), "{r216}");
            assert_eq!(r216["rule"], "R2.16", "{r216}");
        }
        d.act(i, "社区居民选举委员会", &r("投票选举"), residents_ballots(setup)).await;
        d.act(
            i,
            "社区居民选举委员会",
            &r("公布选举结果"),
            form(json!({ "当选人名单": names(&RC_ELECTED), "男性成员人数": 3 })),
        )
        .await;
        d.act(i, "街道选举领导小组", &r("报领导小组备案"), file()).await;
        if i == EAST {
            d.refuse(i, "区民政局", &r("报民政局备案"), reject("不同意"), StatusCode::UNPROCESSABLE_ENTITY, "F010")
                .await;
        }
        d.act(i, "区民政局", &r("报民政局备案"), file()).await;
        d.act(i, "社区居民选举委员会", &r("颁发当选证书"), form(json!({ "当选人名单": names(&RC_ELECTED) }))).await;
    }

    // The oversight committee, 05-03.
    d.advance("2012-05-03 10:00").await;
    for i in 0..n {
        d.act(i, "社区居民选举委员会", &o("选举准备"), done("调查摸底、培训骨干")).await;
        d.act(i, "社区居民选举委员会", &o("选举宣传"), done("宣传")).await;
        d.act(i, "社区居民选举委员会", &o("监督委员候选人资格"), form(oversight_nominee())).await;
        d.act(i, "社区居民选举委员会", &o("提名监督委员候选人"), form(json!({ "候选人名单": names(&OC) }))).await;
        // R2.20: the 61 member representatives chosen at 推选成员代表 (55 + 6) elect.
        let tallies: Vec<(&str, u64)> = OC.iter().zip([50, 48, 46, 44, 40, 36, 30, 12]).map(|(n, v)| (*n, v)).collect();
        d.act(i, "社区居民选举委员会", &o("选举监督委员会"), ballots(58, 56, 1, &tallies)).await;
        d.act(i, "社区居民选举委员会", &o("公布监督委员会选举结果"), done("公布")).await;
    }
    // R2.2: the handover within 10 days of 04-27, when the residents' committee was formed.
    for id in ["east", "north"] {
        let handover = step_of(&d.env.instance(id).await, "工作交接");
        assert_eq!(handover["status"], "open", "{handover}");
        assert_eq!(handover["due_at"], z("2012-05-08 00:00"), "{handover}");
    }
    d.advance("2012-05-04 10:00").await;
    for i in 0..n {
        d.act(i, "社区党组织", "工作交接", form(json!({ "公章已交接": true, "档案已交接": true }))).await;
    }
    assert_eq!(d.env.instance("east").await["status"], "running", "总结完善 is still ahead");

    // 总结完善 from 05-21.
    d.advance("2012-05-21 10:00").await;
    for i in 0..n {
        d.act(i, "社区居委会", "总结完善/健全组织体系", done("成立下属委员会")).await;
        d.act(i, "社区居委会", "总结完善/完善自治制度", done("修订居民公约")).await;
    }
    d.advance("2012-05-25 10:00").await;
    for i in 0..n {
        d.act(i, "社区党组织", "总结完善/总结报告", form(json!({ "总结报告": "换届工作总结" }))).await;
        d.act(i, "街道选举领导小组", "总结完善/专项检查", done("检查合格")).await;
    }

    // ---- the end ----
    let elected = |view: &Value, step: &str| -> Value { step_of(view, step)["vote"]["elected"].clone() };
    let twin = |s: &Simulation, step: &str| -> Value { json!(s.state.nodes[step].vote.as_ref().unwrap().elected) };
    for (i, mid_statuses) in mid_statuses.iter().enumerate() {
        let id = d.runs[i].id;
        let view = d.env.instance(id).await;
        assert_eq!(view["status"], "completed", "{id}: {view}");
        assert_eq!(serde_json::to_value(d.sim(i).state.status).unwrap(), "completed");
        // R2.2: the three windows, from 开始 = 2012-03-21 (ends exclusive: the next midnight).
        for (phase, opens, closes) in [
            ("选前准备", "2012-03-21 00:00", "2012-04-01 00:00"),
            ("正式选举", "2012-04-01 00:00", "2012-05-21 00:00"),
            ("总结完善", "2012-05-21 00:00", "2012-06-05 00:00"),
        ] {
            let s = step_of(&view, phase);
            assert_eq!(
                (s["window_opens"].as_str(), s["window_closes"].as_str()),
                (Some(z(opens).as_str()), Some(z(closes).as_str())),
                "{phase}: {s}"
            );
        }

        // The elected, exactly: the in-memory scenario's lists, and the twin's.
        let committee = if i == EAST { names(&POOL[..5]) } else { names(&POOL[..7]) };
        assert_eq!(elected(&view, &p("差额选举委员")), committee, "{id}");
        assert_eq!(elected(&view, &p("等额选举书记副书记")), names(&["王建国", "李红梅"]), "{id}");
        assert_eq!(elected(&view, &r("投票选举")), names(&RC_ELECTED), "{id}");
        assert_eq!(elected(&view, &o("选举监督委员会")), names(&OC[..7]), "{id}");
        for step in [p("差额选举委员"), p("等额选举书记副书记"), r("投票选举"), o("选举监督委员会")]
        {
            assert_eq!(elected(&view, &step), twin(d.sim(i), &step), "{id}: {step}");
        }
        // R2.1: party organisation, then residents' committee, then oversight committee.
        assert_eq!(step_of(&view, PARTY)["closed_at"], z("2012-04-19 10:00"));
        assert_eq!(step_of(&view, RESIDENTS)["closed_at"], z("2012-04-27 10:00"));
        assert_eq!(step_of(&view, OVERSIGHT)["closed_at"], z("2012-05-03 10:00"));

        // The durable history verifies, and is the in-memory run's, event for event.
        let verified = d.env.get(&format!("/v1/instances/{id}/history/verify")).await;
        assert_eq!(verified["ok"], true, "{id}: {verified}");
        let history = d.env.history(id).await;
        assert_eq!(verified["events"], history.len() as u64);
        let durable: Vec<(String, String, Value)> = history
            .iter()
            .map(|e| {
                (e["kind"].as_str().unwrap().to_string(), e["at"].as_str().unwrap().to_string(), e["payload"].clone())
            })
            .collect();
        let memory: Vec<(String, String, Value)> = d
            .sim(i)
            .history
            .iter()
            .map(|(e, at)| {
                let at = at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
                (e.kind().to_string(), at, serde_json::to_value(e).unwrap())
            })
            .collect();
        assert_eq!(durable.len(), memory.len(), "{id}: the number of events");
        for (k, (a, b)) in durable.iter().zip(&memory).enumerate() {
            assert_eq!(a, b, "{id}: event {} differs between the durable and in-memory runs", k + 1);
        }
        let _ = writeln!(std::io::stderr(), "http_election: {id}: {} events, durable = in memory", durable.len());
        assert_eq!(history.last().unwrap()["kind"], "instance_completed");
        assert_eq!(history.last().unwrap()["at"], z("2012-05-25 10:00"));

        // as_of the mid-point: the statuses the twin had then.
        let as_of = z(mid);
        let then = d.env.get(&format!("/v1/instances/{id}?as_of={as_of}")).await;
        assert_eq!(then["status"], "running");
        let then_statuses: BTreeMap<String, String> = then["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["id"].as_str().unwrap().to_string(), s["status"].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(&then_statuses, mid_statuses, "{id}: as_of {mid}");
        assert_eq!(then_statuses[PARTY], "done");
        assert_eq!(then_statuses[&r("投票选举")], "open");
        assert_eq!(then_statuses[OVERSIGHT], "waiting");
        assert_eq!(then_statuses["工作交接"], "waiting");
        assert_eq!(then_statuses["总结完善"], "waiting");
    }
    next_election(&mut d).await;
    let _ = writeln!(std::io::stderr(), "http_election: {} acts and refusals through HTTP", d.acts);
    d.env.finish().await;
}

/// R2.3, R0.3: the term is three years from the end of the formal election (R0.1: due at 00:00
/// of the day after the corresponding day). The members, households and voters must be counted
/// afresh, so the next election is a task for the street's election group — recorded once —
/// and starting it with the new numbers creates `ID~2`, linked to this one.
async fn next_election(d: &mut Driver) {
    let ids: Vec<&str> = d.runs.iter().map(|r| r.id).collect();
    let mut due = BTreeMap::new();
    for id in &ids {
        let view = d.env.instance(id).await;
        assert_eq!(view["status"], "completed");
        let ended: DateTime<Utc> = serde_json::from_value(step_of(&view, "正式选举")["closed_at"].clone()).unwrap();
        let last = ended.with_timezone(&zone()).date_naive().checked_add_months(chrono::Months::new(36)).unwrap();
        let at = zone().from_local_datetime(&last.succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap()).unwrap();
        let at = at.with_timezone(&Utc);
        let shown: DateTime<Utc> = serde_json::from_value(view["next_cycle_due"].clone()).unwrap();
        assert_eq!(shown, at, "{id}");
        assert_eq!(view["cycle"], 1);
        due.insert(*id, at);
    }
    // A second node on the same database (on PostgreSQL in the PostgreSQL run), its clock at the
    // same instant, fires the due timers at the same time as the server: each next election is
    // still due exactly once (asserted below), and node-b fired its share of them under leases.
    let store = d.env.server.state.store.clone();
    let (committer, _committing) = GroupCommitter::spawn(store.clone(), GroupCommitConfig::default());
    let clock_b = Arc::new(SimulatedClock::new(DateTime::parse_from_rfc3339(&z("2015-06-01 09:00")).unwrap().into()));
    let calendar = Arc::new(Calendar::chinese().unwrap());
    let node_b = Arc::new(Runtime::new(store, committer, clock_b, calendar, "node-b".into()));
    let racing = tokio::spawn({
        let node_b = node_b.clone();
        async move { node_b.fire_all_due().await }
    });
    d.advance("2015-06-01 09:00").await;
    racing.await.unwrap().unwrap();
    assert_eq!(node_b.fire_all_due().await.unwrap(), 0, "nothing is left to fire on either node");
    let fresh = json!({
        "党员人数": 64, "户数": 2100, "单位数": 21, "党组织席位": 5, "居委会席位": 5, "监督委员会席位": 7,
    });
    for id in &ids {
        let view = d.env.instance(id).await;
        assert_eq!(view["next_cycle_awaiting"], "街道选举领导小组", "{id}");
        assert_eq!(view["next_cycle"], format!("{id}~2"));
        let history = d.env.history(id).await;
        assert_eq!(history.iter().filter(|e| e["kind"] == "next_cycle_due").count(), 1, "{id}: due once");
        // The task is in the street election group's inbox, not in the community's.
        let inbox = d.env.send(reqwest::Method::GET, "/v1/inbox", &d.tokens["街道选举领导小组"], None).await.body;
        let task: Vec<&Value> =
            inbox.as_array().unwrap().iter().filter(|i| i["instance"] == *id && i["kind"] == "next_cycle").collect();
        assert_eq!(task.len(), 1, "{inbox}");
        assert_eq!(task[0]["step"], "~cycle");
        assert_eq!(serde_json::from_value::<DateTime<Utc>>(task[0]["due_at"].clone()).unwrap(), due[id]);
        let other = d.env.send(reqwest::Method::GET, "/v1/inbox", &d.tokens["社区党组织"], None).await.body;
        assert!(!other.as_array().unwrap().iter().any(|i| i["kind"] == "next_cycle"), "{other}");
        let path = format!("/v1/instances/{id}/next-cycle");
        // Another body may not start it (403), and nothing is recorded.
        let body = json!({ "params": fresh });
        let r = d.env.send(reqwest::Method::POST, &path, &d.tokens["社区党组织"], Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.body["code"], "F006");
        assert_eq!(d.env.history(id).await.len(), history.len());
        // The live stream, opened before: the new instance's first events reach it too.
        let mut stream = d
            .env
            .client
            .get(format!("{}/v1/events?instance={id}~2", d.env.base))
            .bearer_auth(&d.tokens["街道选举领导小组"])
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        let r = d.env.send(reqwest::Method::POST, &path, &d.tokens["街道选举领导小组"], Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let mut seen = String::new();
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            while !seen.contains("event: started") {
                match stream.chunk().await.unwrap() {
                    Some(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                    None => break,
                }
            }
        })
        .await;
        assert!(read.is_ok(), "the next cycle's start did not reach the stream: {seen}");
        assert!(seen.contains(&format!("id: {id}~2/1\n")), "{seen}");
        drop(stream);
        let again = d.env.send(reqwest::Method::POST, &path, &d.tokens["街道选举领导小组"], Some(body)).await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
        assert_eq!(again.body["code"], "F042");
        let inbox = d.env.send(reqwest::Method::GET, "/v1/inbox", &d.tokens["街道选举领导小组"], None).await.body;
        assert!(!inbox.as_array().unwrap().iter().any(|i| i["instance"] == *id && i["kind"] == "next_cycle"));
        let next = d.env.instance(&format!("{id}~2")).await;
        assert_eq!(next["cycle"], 2);
        assert_eq!(next["previous"], *id);
        assert_eq!(next["status"], "running");
        let start = due[id].with_timezone(&zone()).date_naive().to_string();
        assert_eq!(next["params"]["开始"], start.as_str());
        assert_eq!(next["params"]["党员人数"], 64);
        assert_eq!(next["params"]["社区名称"], view["params"]["社区名称"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundled_election_through_http_on_sqlite() {
    election(Env::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundled_election_through_http_on_postgres() {
    if let Some(env) = Env::postgres("bundled").await {
        election(env).await;
    }
}

// ---- graceful shutdown ----

/// Does the port answer a fresh connection?
async fn answers(addr: SocketAddr) -> bool {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    client.get(format!("http://{addr}/healthz")).send().await.is_ok()
}

/// What holds every commit of the server back: the SQLite store's one writer connection, or a
/// PostgreSQL transaction holding `instances` in EXCLUSIVE mode (reads go on, inserts wait).
enum Hold {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Hold {
    async fn take(backend: &Backend) -> Hold {
        match backend {
            Backend::Sqlite { store, .. } => Hold::Sqlite(store.writer_pool().acquire().await.unwrap()),
            Backend::Postgres { admin, schema, .. } => {
                let mut tx = admin.begin().await.unwrap();
                let lock = format!("LOCK TABLE {schema}.instances IN EXCLUSIVE MODE");
                sqlx::query(AssertSqlSafe(lock)).execute(&mut *tx).await.unwrap();
                Hold::Postgres(tx)
            }
        }
    }

    async fn release(self) {
        match self {
            Hold::Sqlite(conn) => drop(conn),
            Hold::Postgres(tx) => tx.rollback().await.unwrap(),
        }
    }
}

/// The server is stopped while 32 starts are in flight (each held at its commit, see [`Hold`])
/// and an event stream is open: the port stops accepting at once, the stream ends cleanly, every
/// start in flight is answered 201 and its instance is stored, and the stop returns; the port then
/// refuses connections.
async fn graceful_shutdown(env: Env) {
    const N: usize = 32;
    let Env { server, backend, client, base, admin } = env;
    let addr = server.addr;
    let token =
        create_token(server.state.store.as_ref(), "刘组长", "舜耕街道办事处", &["街道选举领导小组".to_string()])
            .await
            .unwrap();
    let mut stream = client.get(format!("{base}/v1/events")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);

    let hold = Hold::take(&backend).await;
    let params = json!({
        "社区名称": "舜耕社区", "党员人数": 60, "户数": 2000, "单位数": 20, "党组织席位": 5,
        "居委会席位": 5, "监督委员会席位": 7,
    });
    let requests: Vec<_> = (0..N)
        .map(|k| {
            let request = client
                .post(format!("{base}/v1/instances"))
                .bearer_auth(&token)
                .header("Idempotency-Key", format!("start-{k}"))
                .json(&json!({ "policy": "election", "params": params, "id": format!("community-{k}") }));
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                let status = response.status();
                (status, response.text().await.unwrap())
            })
        })
        .collect();
    // All of them are in the server (each holds its idempotency key while it runs).
    let inflight = server.state.inflight.clone();
    let all_in = tokio::time::timeout(Duration::from_secs(20), async {
        while inflight.lock().unwrap().len() < N {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(all_in.is_ok(), "only {} of {N} requests reached the server", inflight.lock().unwrap().len());

    let stopping = tokio::spawn(server.stop());
    // New connections are refused while the requests in flight still wait for the store.
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        while answers(addr).await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "the port still accepts after the stop signal");
    assert!(requests.iter().all(|r| !r.is_finished()), "a request was answered while the store was held");
    assert!(!stopping.is_finished(), "the stop returned with requests in flight");
    // The event stream ends, cleanly (it does not hold the shutdown up).
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.chunk().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await;
    let ended = ended.unwrap_or_else(|_| panic!("the event stream did not end on stop"));
    assert!(ended.is_ok(), "the event stream was cut, not ended: {ended:?}");

    hold.release().await;
    for (k, request) in requests.into_iter().enumerate() {
        let (status, body) = tokio::time::timeout(Duration::from_secs(30), request).await.unwrap().unwrap();
        assert_eq!(status, StatusCode::CREATED, "start {k}: {body}");
    }
    tokio::time::timeout(Duration::from_secs(30), stopping).await.unwrap().unwrap();
    assert!(!answers(addr).await, "the port answers after the stop");
    let store: &dyn Store = match &backend {
        Backend::Sqlite { store, .. } => store,
        Backend::Postgres { store, .. } => store,
    };
    let stored = store.list_instances(&InstanceFilter { page_size: 100, ..InstanceFilter::default() }).await.unwrap();
    assert_eq!(stored.total, N as u64, "every answered start is stored");
    match backend {
        Backend::Sqlite { store, _dir } => store.close().await,
        Backend::Postgres { store, admin, schema } => {
            store.close().await;
            sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&admin).await.unwrap();
            admin.close().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_answers_the_requests_in_flight_on_sqlite() {
    graceful_shutdown(Env::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_answers_the_requests_in_flight_on_postgres() {
    if let Some(env) = Env::postgres("shutdown").await {
        graceful_shutdown(env).await;
    }
}

/// A nominee for the oversight committee who meets R2.13.
fn oversight_nominee() -> Value {
    json!({
        "被提名人": "罗成", "提名岗位": "委员", "年龄": 45, "新进人员": false, "荣誉放宽": false,
        "受过刑事处罚": false, "刑满已满年数": 0, "受过劳教": false, "解除劳教已满年数": 0,
        "违反计划生育": false, "计生已处理": false, "计生处理已满年数": 0,
        "涉黑涉恶受处理": false, "涉黑涉恶处理已满年数": 0, "具有行为能力": true
    })
}
