//! Issue 11.5 through HTTP, on both stores: fifty running elections move from the bundled
//! version 2012.1 to a version 2012.2 that renames 集中培训 (业务培训) and adds 培训考核 after it,
//! in 选前准备. The one election whose preparation is done is refused by the plan and named — the
//! step would be added into a phase that is done — and stays on its version; the others move,
//! each in a commit of its own, and run the added step; applying the plan again resumes, moving
//! nothing twice.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::http::{assert_problem, Env};

const REFUSED: &str = "e-07";

fn version_2() -> String {
    let v1 = civicflow_policies::get("election").unwrap().source;
    let renamed = v1
        .replace(r#"version "2012.1""#, r#"version "2012.2""#)
        .replace(r#"step 集中培训 "选举工作人员集中培训": task {"#, r#"step 业务培训 "选举工作人员集中培训": task {"#);
    let added = r#"    step 培训考核 "选举工作人员培训考核": task {
      by 街道选举领导小组
      after 业务培训
    }

    step 业务培训 "#;
    assert!(renamed.contains("    step 业务培训 "), "the rename applies");
    renamed.replacen("    step 业务培训 ", added, 1)
}

fn done(report: &str) -> Value {
    json!({ "action": "complete", "data": { "report": report } })
}

async fn issue_11_5_fifty_elections_move_to_version_2(env: Env) {
    let group = env.token("孙组长", "街道办事处", &["街道选举领导小组"]).await;
    let committee = env.token("钱书记", "街道党工委", &["街道党工委"]).await;
    let params = json!({ "社区名称": "舜耕社区", "党员人数": 60, "户数": 2000, "单位数": 20,
                         "党组织席位": 5, "居委会席位": 5, "监督委员会席位": 7 });
    for k in 0..50 {
        let body = json!({ "policy": "election", "version": "2012.1", "params": params, "id": format!("e-{k:02}") });
        let r = env.post("/v1/instances", &group, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    // One election has done its preparation.
    let plan_form = json!({ "action": "submit_form", "data": { "方案": "换届选举工作方案" } });
    assert_eq!(env.act(REFUSED, "选前准备/成立工作机构", &committee, done("成立")).await.status, StatusCode::OK);
    assert_eq!(env.act(REFUSED, "选前准备/制定工作方案", &group, plan_form).await.status, StatusCode::OK);
    let meeting = json!({ "action": "submit_form", "data": {} });
    assert_eq!(env.act(REFUSED, "选前准备/动员部署", &group, meeting).await.status, StatusCode::OK);
    assert_eq!(env.act(REFUSED, "选前准备/集中培训", &group, done("已培训")).await.status, StatusCode::OK);
    assert_eq!(env.step(REFUSED, "选前准备").await["status"], "done");

    let published = env
        .client
        .post(format!("{}/v1/policies", env.base))
        .bearer_auth(&env.admin)
        .header("content-type", "text/plain")
        .body(version_2())
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), StatusCode::CREATED);
    let request = json!({ "policy": "election", "from": "2012.1", "to": "2012.2",
                          "renames": { "选前准备/集中培训": "选前准备/业务培训" } });
    assert_problem(&env.post("/v1/migrations", &group, request.clone()).await, StatusCode::FORBIDDEN, "ADMIN_REQUIRED");
    let bad = json!({ "policy": "election", "from": "2012.1", "to": "2012.2",
                      "renames": { "选前准备/集中培训": "选前准备/不存在" } });
    assert_problem(&env.post("/v1/migrations", &env.admin, bad).await, StatusCode::CONFLICT, "F061");
    let planned = env.post("/v1/migrations", &env.admin, request).await;
    assert_eq!(planned.status, StatusCode::CREATED, "{}", planned.body);
    let plan = &planned.body;
    assert_eq!((&plan["from_label"], &plan["to_label"]), (&json!("2012.1"), &json!("2012.2")));
    assert_eq!(plan["renamed"], json!({ "选前准备/集中培训": "选前准备/业务培训" }));
    assert_eq!((&plan["added"], &plan["removed"]), (&json!(["选前准备/培训考核"]), &json!([])));
    assert_eq!((&plan["moves"], &plan["refused"]), (&json!(49), &json!(1)));
    let instances = plan["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 50);
    let refused: Vec<&Value> = instances.iter().filter(|i| i["outcome"] == "refused").collect();
    assert_eq!(refused.len(), 1);
    assert_eq!((&refused[0]["id"], &refused[0]["code"]), (&json!(REFUSED), &json!("F061")));
    assert_eq!(
        refused[0]["reason"],
        "the instance cannot move to the new version: step `选前准备/培训考核`: it would be added into `选前准备`, which is done"
    );
    let first = &instances[0];
    assert_eq!(first["renamed"], json!([["选前准备/集中培训", "选前准备/业务培训"]]));
    assert_eq!(first["added"], json!(["选前准备/培训考核"]));
    let id = plan["id"].as_str().unwrap();
    assert!(plan["text"].as_str().unwrap().contains(&format!("  REFUSED  {REFUSED} (v")), "{}", plan["text"]);
    // Reviewed as stored; nothing moved yet.
    assert_eq!(env.get(&format!("/v1/migrations/{id}"), &env.admin).await.body["instances"], plan["instances"]);
    assert_eq!(env.step("e-00", "选前准备/集中培训").await["status"], "waiting");
    assert_eq!(env.step("e-00", "选前准备/业务培训").await, json!(null));

    let applied = env.post(&format!("/v1/migrations/{id}/apply"), &env.admin, json!(null)).await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.body);
    let report = &applied.body;
    assert_eq!(report["migrated"].as_array().map(Vec::len), Some(49));
    assert_eq!((&report["already"], &report["gone"]), (&json!([]), &json!([])));
    assert_eq!(report["refused"][0]["id"], REFUSED);
    // A moved election runs version 2: the renamed step, then the added one.
    let view = env.get("/v1/instances/e-00", &group).await.body;
    assert_eq!(view["policy_hash"], plan["to"]);
    assert_eq!(env.step("e-00", "选前准备/业务培训").await["status"], "waiting");
    assert_eq!(env.step("e-00", "选前准备/培训考核").await["status"], "waiting");
    let history = env.get("/v1/instances/e-00/history", &env.admin).await.body;
    let migrated = history["events"].as_array().unwrap().iter().find(|e| e["kind"] == "migrated").unwrap().clone();
    assert_eq!((&migrated["actor"], &migrated["payload"]["plan"]), (&json!("admin"), &json!(id)));
    let verified = env.get("/v1/instances/e-00/history/verify", &env.admin).await;
    assert_eq!(verified.body["ok"], true, "{}", verified.body);
    assert_eq!(env.act("e-00", "选前准备/成立工作机构", &committee, done("成立")).await.status, StatusCode::OK);
    let plan_form = json!({ "action": "submit_form", "data": { "方案": "方案" } });
    assert_eq!(env.act("e-00", "选前准备/制定工作方案", &group, plan_form).await.status, StatusCode::OK);
    assert_eq!(env.act("e-00", "选前准备/业务培训", &group, done("已培训")).await.status, StatusCode::OK);
    assert_eq!(env.step("e-00", "选前准备/培训考核").await["status"], "open");
    // The inbox reads the new version's steps (the open-step rows were written anew).
    let inbox = env.get("/v1/inbox?page_size=1000", &group).await.body;
    let mut steps: Vec<&str> = inbox
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["instance"] == "e-00")
        .filter_map(|i| i["step"].as_str())
        .collect();
    steps.sort();
    assert_eq!(steps, ["选前准备/动员部署", "选前准备/培训考核"]);
    // The refused election stays on 2012.1.
    assert_eq!(env.get(&format!("/v1/instances/{REFUSED}"), &group).await.body["policy_hash"], plan["from"]);
    // Applied again (an interrupted application resumed): nothing moves twice.
    let again = env.post(&format!("/v1/migrations/{id}/apply"), &env.admin, json!(null)).await;
    assert_eq!(
        (again.body["migrated"].as_array().map(Vec::len), again.body["already"].as_array().map(Vec::len)),
        (Some(0), Some(49))
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_5_fifty_elections_move_to_version_2_on_sqlite() {
    issue_11_5_fifty_elections_move_to_version_2(Env::sqlite(true).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_5_fifty_elections_move_to_version_2_on_postgres() {
    if let Some(env) = Env::postgres_with("migrate", true).await {
        issue_11_5_fifty_elections_move_to_version_2(env).await;
    }
}
