//! Issue 11: running instances change, through HTTP on the bundled 居民诉求: suspension over a
//! holiday and resumption (挂起 / 激活), with the deadlines it moves; a demand handed to another
//! department (转办) with its limit kept; an approver added to a 会签 (加签).

use reqwest::StatusCode;
use serde_json::json;

use crate::http::{assert_problem, events_after, Env};

/// 民生办 (`may suspend`) suspends a demand the department is working on while a court decides:
/// nothing may be acted on, no deadline lapses, the instance and the inbox say so; resumed after
/// the 2012 Qingming holiday, the department's limit is moved by the working days it took.
async fn issue_11_3_suspension_and_resumption(env: Env) {
    let community = env.token("王主任", "舜耕社区", &["社区居委会"]).await;
    let office = env.token("李四", "区民生办", &["民生办"]).await;
    let dept = env.token("赵科长", "市政公用局", &["首办部门"]).await;
    let start = json!({ "policy": "residents_demand", "params": { "社区名称": "舜耕社区" }, "id": "demand-s" });
    assert_eq!(env.post("/v1/instances", &community, start).await.status, StatusCode::CREATED);
    let id = "demand-s";
    let form = json!({ "action": "submit_form", "data": {
        "诉求人": "张三", "联系电话": "13800000000", "诉求内容": "小区路灯损坏", "受理日期": "2012-03-21" } });
    assert_eq!(env.act(id, "诉求受理", &community, form).await.status, StatusCode::OK);
    let reject = json!({ "action": "reject", "data": { "reason": "需市政部门维修" } });
    assert_eq!(env.act(id, "社区研判", &community, reject).await.status, StatusCode::OK);
    let assign = json!({ "action": "submit_form", "data": { "首办部门名称": "市政公用局", "督办人": "李四" } });
    assert_eq!(env.act(id, "民生办分流", &office, assign).await.status, StatusCode::OK);
    let take = json!({ "action": "complete", "data": { "report": "已受理" } });
    assert_eq!(env.act(id, "首办受理", &dept, take).await.status, StatusCode::OK);
    // Taken in on Wednesday 03-21: 15 working days (the make-up weekend 03-31, 04-01 counted,
    // 清明 04-02 … 04-04 not) → the end of Thursday 04-12.
    assert_eq!(env.step(id, "首办办结").await["due_at"], "2012-04-12T16:00:00Z");

    // The department may not suspend (F052, 403); 民生办 may, with a reason.
    let why = json!({ "reason": "当事人已起诉,等待法院裁定" });
    let refused = env.post(&format!("/v1/instances/{id}/suspend"), &dept, why.clone()).await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "F052");
    assert_eq!(refused.body["detail"], "role `首办部门` may not suspend or resume this instance; that is for `民生办`");
    let blank = env.post(&format!("/v1/instances/{id}/suspend"), &office, json!({ "reason": " " })).await;
    assert_problem(&blank, StatusCode::UNPROCESSABLE_ENTITY, "F018");
    env.advance_to("2012-03-30T10:00:00+08:00").await;
    let suspended = env.post(&format!("/v1/instances/{id}/suspend"), &office, why).await;
    assert_eq!(suspended.status, StatusCode::OK, "{}", suspended.body);
    assert_eq!(suspended.body["events"][0]["kind"], "suspended");
    let view = env.get(&format!("/v1/instances/{id}"), &office).await;
    assert_eq!(
        view.body["suspended"],
        json!({ "since": "2012-03-30T02:00:00Z", "reason": "当事人已起诉,等待法院裁定" })
    );
    // Listed, marked, with nothing to do; acting is refused (F050, 409).
    let inbox = env.get("/v1/inbox", &dept).await;
    assert_eq!(inbox.body[0]["step"], "首办办结");
    assert_eq!((&inbox.body[0]["suspended"], &inbox.body[0]["actions"]), (&json!(true), &json!([])));
    let done = json!({ "action": "submit_form", "data": { "办理结果": "已修复" } });
    assert_problem(&env.act(id, "首办办结", &dept, done.clone()).await, StatusCode::CONFLICT, "F050");
    // Past the first deadline: nothing lapses while suspended.
    let len = env.history_len(id).await;
    env.advance_to("2012-04-20T09:00:00+08:00").await;
    assert_eq!(env.history_len(id).await, len, "no breach, no reminder while suspended");

    // Resumed on Friday 04-20. The working days after Friday 03-30 through 04-20: 03-31 and
    // 04-01 (make-up weekend days), 04-05, 04-06, 04-09 … 04-13, 04-16 … 04-20 (04-02 … 04-04 are
    // 清明) — 14; the limit moves from the end of 04-12 by 14 working days: 04-13, 04-16 … 04-20,
    // 04-23 … 04-27, the make-up Saturday 04-28, then (劳动节 04-29 … 05-01) 05-02, 05-03 — the
    // end of Thursday 05-03.
    let resumed =
        env.post(&format!("/v1/instances/{id}/resume"), &office, json!({ "reason": "法院已裁定,恢复办理" })).await;
    assert_eq!(resumed.status, StatusCode::OK, "{}", resumed.body);
    let event = &resumed.body["events"][0];
    assert_eq!(event["kind"], "resumed");
    assert_eq!(
        event["payload"]["deadlines"],
        json!([{ "node": "首办办结", "from": "2012-04-12T16:00:00Z", "to": "2012-05-03T16:00:00Z" }])
    );
    assert_eq!(env.step(id, "首办办结").await["due_at"], "2012-05-03T16:00:00Z");
    assert!(env.get(&format!("/v1/instances/{id}"), &office).await.body.get("suspended").is_none());
    let again = env.post(&format!("/v1/instances/{id}/resume"), &office, json!({ "reason": "再次" })).await;
    assert_problem(&again, StatusCode::CONFLICT, "F051");
    assert_eq!(env.act(id, "首办办结", &dept, done).await.status, StatusCode::OK);
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_3_suspension_over_qingming_and_resumption_on_sqlite() {
    issue_11_3_suspension_and_resumption(Env::sqlite(true).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_3_suspension_over_qingming_and_resumption_on_postgres() {
    if let Some(env) = Env::postgres_with("suspension", true).await {
        issue_11_3_suspension_and_resumption(env).await;
    }
}

/// 民生办 hands the demand from 市政公用局 to 住建局 (转办): the first department is refused from
/// then on (F035), the second acts on it, and the owner's limit is kept — R3.5 still escalates at
/// the original instant.
async fn issue_11_2_a_transfer_keeps_the_owners_limit(env: Env) {
    let community = env.token("王主任", "舜耕社区", &["社区居委会"]).await;
    let office = env.token("李四", "区民生办", &["民生办"]).await;
    let first = env.token("赵科长", "市政公用局", &["首办部门"]).await;
    let second = env.token("周科长", "住建局", &["首办部门"]).await;
    let start = json!({ "policy": "residents_demand", "params": { "社区名称": "舜耕社区" }, "id": "demand-t" });
    assert_eq!(env.post("/v1/instances", &community, start).await.status, StatusCode::CREATED);
    let id = "demand-t";
    let form = json!({ "action": "submit_form", "data": {
        "诉求人": "张三", "联系电话": "13800000000", "诉求内容": "楼道墙体开裂", "受理日期": "2012-03-21" } });
    assert_eq!(env.act(id, "诉求受理", &community, form).await.status, StatusCode::OK);
    let reject = json!({ "action": "reject", "data": { "reason": "需主管部门处理" } });
    assert_eq!(env.act(id, "社区研判", &community, reject).await.status, StatusCode::OK);
    let assign = json!({ "action": "submit_form", "data": { "首办部门名称": "市政公用局", "督办人": "李四" } });
    assert_eq!(env.act(id, "民生办分流", &office, assign).await.status, StatusCode::OK);
    let take = json!({ "action": "complete", "data": { "report": "已受理" } });
    assert_eq!(env.act(id, "首办受理", &first, take).await.status, StatusCode::OK);
    assert_eq!(env.step(id, "首办办结").await["due_at"], "2012-04-12T16:00:00Z");

    // The department may not hand it on itself (F053, 403); 民生办 may, with a reason.
    let to_housing = json!({ "action": "transfer", "data": { "to": "住建局", "reason": "属房屋安全,由住建局办理" } });
    assert_problem(&env.act(id, "首办办结", &first, to_housing.clone()).await, StatusCode::FORBIDDEN, "F053");
    env.advance_to("2012-03-26T10:00:00+08:00").await;
    let len = env.history_len(id).await;
    let moved = env.act(id, "首办办结", &office, to_housing).await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    let event = &moved.body["events"][0];
    assert_eq!((&event["kind"], &event["actor"]), (&json!("transferred"), &json!("李四")));
    assert_eq!(
        event["payload"],
        json!({ "event": "transferred", "node": "首办办结", "role": "首办部门", "from": "市政公用局",
                "to": "住建局", "reason": "属房屋安全,由住建局办理" })
    );
    assert_eq!(env.step(id, "首办办结").await["due_at"], "2012-04-12T16:00:00Z", "the limit is kept");
    // The inboxes follow: the first department's is empty, the second's lists it.
    let first_inbox = env.get("/v1/inbox", &first).await;
    assert!(first_inbox.body.as_array().unwrap().iter().all(|i| i["instance"] != id), "{}", first_inbox.body);
    let second_inbox = env.get("/v1/inbox", &second).await;
    assert_eq!(second_inbox.body[0]["step"], "首办办结", "{}", second_inbox.body);
    let done = json!({ "action": "submit_form", "data": { "办理结果": "已加固" } });
    assert_problem(&env.act(id, "首办办结", &first, done.clone()).await, StatusCode::FORBIDDEN, "F035");
    // R3.5: the limit lapses at its original instant, escalated then.
    env.advance_to("2012-04-13T09:00:00+08:00").await;
    let lapsed: Vec<_> = events_after(&env, id, len + 1)
        .await
        .into_iter()
        .filter(|(k, n, _)| n == "首办办结" && (k == "overdue" || k == "escalated"))
        .collect();
    let at = "2012-04-12T16:00:00Z".to_string();
    let node = "首办办结".to_string();
    assert_eq!(
        lapsed,
        [
            ("overdue".into(), node.clone(), at.clone()),
            ("escalated".into(), node.clone(), at.clone()),
            ("escalated".into(), node, at)
        ]
    );
    assert_eq!(env.act(id, "首办办结", &second, done).await.status, StatusCode::OK);
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_2_a_transfer_keeps_the_owners_limit_on_sqlite() {
    issue_11_2_a_transfer_keeps_the_owners_limit(Env::sqlite(true).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_2_a_transfer_keeps_the_owners_limit_on_postgres() {
    if let Some(env) = Env::postgres_with("transfer", true).await {
        issue_11_2_a_transfer_keeps_the_owners_limit(env).await;
    }
}

/// 加签 on a 会签 step through HTTP: the leader adds the finance office, which then finds the
/// step in its inbox and must sign before the step is approved; a removal before it signed would
/// have decided it.
async fn issue_11_2_an_approver_added_to_a_cosign(env: Env) {
    const COSIGN: &str = "policy 会签加签 {
  role 甲科
  role 乙科
  role 财政科
  role 分管领导
  step 会签: approval { by 甲科, 乙科 rule all approvers by 分管领导 from 财政科 }
}";
    let published = env
        .client
        .post(format!("{}/v1/policies", env.base))
        .bearer_auth(&env.admin)
        .header("content-type", "text/plain")
        .body(COSIGN)
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), StatusCode::CREATED);
    let a = env.token("甲", "甲科", &["甲科"]).await;
    let b = env.token("乙", "乙科", &["乙科"]).await;
    let finance = env.token("财", "财政科", &["财政科"]).await;
    let leader = env.token("钱", "区政府", &["分管领导"]).await;
    let started = env.post("/v1/instances", &a, json!({ "policy": "会签加签", "id": "cosign-1" })).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let id = "cosign-1";
    assert_eq!(env.get("/v1/inbox", &finance).await.body, json!([]));
    let add = json!({ "action": "add_approver", "data": { "role": "财政科", "reason": "涉及专项资金" } });
    assert_problem(&env.act(id, "会签", &a, add.clone()).await, StatusCode::FORBIDDEN, "F055");
    let added = env.act(id, "会签", &leader, add).await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert_eq!(added.body["events"][0]["kind"], "approver_added");
    let inbox = env.get("/v1/inbox", &finance).await;
    assert_eq!((&inbox.body[0]["step"], &inbox.body[0]["role"]), (&json!("会签"), &json!("财政科")), "{}", inbox.body);
    let approve = json!({ "action": "approve" });
    assert_eq!(env.act(id, "会签", &a, approve.clone()).await.status, StatusCode::OK);
    assert_eq!(env.act(id, "会签", &b, approve.clone()).await.status, StatusCode::OK);
    assert_eq!(env.step(id, "会签").await["status"], "open", "the added approver has not signed");
    let again = json!({ "action": "remove_approver", "data": { "role": "甲科", "reason": "不涉及" } });
    let refused = env.act(id, "会签", &leader, again).await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY, "F056");
    assert_eq!(
        refused.body["detail"],
        "the approvers of step `会签` cannot change for `甲科`: it has acted already; its act stays"
    );
    assert_eq!(env.act(id, "会签", &finance, approve).await.status, StatusCode::OK);
    let done = env.get(&format!("/v1/instances/{id}"), &a).await;
    assert_eq!(done.body["status"], "completed", "{}", done.body);
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_2_an_approver_added_to_a_cosign_on_sqlite() {
    issue_11_2_an_approver_added_to_a_cosign(Env::sqlite(false).await).await;
}

/// 抄送 through HTTP on the bundled 居民诉求: 民生办 copies the department's step to the
/// petitions office (信访部门) for information; it is in that office's inbox read-only, stays
/// there once the step is done, and leaves it when a principal of the office marks it read.
async fn issue_11_2_a_copy_for_information(env: Env) {
    let community = env.token("王主任", "舜耕社区", &["社区居委会"]).await;
    let office = env.token("李四", "区民生办", &["民生办"]).await;
    let dept = env.token("赵科长", "市政公用局", &["首办部门"]).await;
    let petitions = env.token("钱主任", "区信访局", &["信访部门"]).await;
    let start = json!({ "policy": "residents_demand", "params": { "社区名称": "舜耕社区" }, "id": "demand-c" });
    assert_eq!(env.post("/v1/instances", &community, start).await.status, StatusCode::CREATED);
    let id = "demand-c";
    let form = json!({ "action": "submit_form", "data": {
        "诉求人": "张三", "联系电话": "13800000000", "诉求内容": "噪音扰民", "受理日期": "2012-03-21" } });
    assert_eq!(env.act(id, "诉求受理", &community, form).await.status, StatusCode::OK);
    let reject = json!({ "action": "reject", "data": { "reason": "需执法部门处理" } });
    assert_eq!(env.act(id, "社区研判", &community, reject).await.status, StatusCode::OK);
    let assign = json!({ "action": "submit_form", "data": { "首办部门名称": "市政公用局", "督办人": "李四" } });
    assert_eq!(env.act(id, "民生办分流", &office, assign).await.status, StatusCode::OK);
    let take = json!({ "action": "complete", "data": { "report": "已受理" } });
    assert_eq!(env.act(id, "首办受理", &dept, take).await.status, StatusCode::OK);

    // The department may not copy (F057, 403); 民生办 may.
    let copy = json!({ "action": "copy_to", "data": { "to": "区信访局", "message": "请知悉办理进展" } });
    let refused = env.act(id, "首办办结", &dept, copy.clone()).await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "F057");
    assert_eq!(
        refused.body["detail"],
        "role `首办部门` may not copy step `首办办结` to another office; copying it is for `民生办`"
    );
    let sent = env.act(id, "首办办结", &office, copy.clone()).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert_eq!(
        sent.body["events"][0]["payload"],
        json!({ "event": "copied_to", "node": "首办办结", "office": "区信访局", "message": "请知悉办理进展" })
    );
    assert_problem(&env.act(id, "首办办结", &office, copy).await, StatusCode::CONFLICT, "F058");
    // Read-only in the petitions office's inbox: its only action is to mark it read.
    let inbox = env.get("/v1/inbox", &petitions).await;
    assert_eq!(inbox.body.as_array().map(Vec::len), Some(1), "{}", inbox.body);
    let item = &inbox.body[0];
    assert_eq!(
        (&item["step"], &item["copied"], &item["actions"]),
        (&json!("首办办结"), &json!(true), &json!(["mark_read"]))
    );
    assert_eq!(inbox.headers.get("x-total-count").map(|v| v.to_str().unwrap().to_string()), Some("1".into()));
    // Acting on it is still refused: a copy reads, it does not act (F006).
    let done = json!({ "action": "submit_form", "data": { "办理结果": "已整改" } });
    assert_problem(&env.act(id, "首办办结", &petitions, done.clone()).await, StatusCode::FORBIDDEN, "F006");
    // The step is done; the copy is still listed, with no deadline.
    assert_eq!(env.act(id, "首办办结", &dept, done).await.status, StatusCode::OK);
    let inbox = env.get("/v1/inbox", &petitions).await;
    assert_eq!(
        (&inbox.body[0]["step"], &inbox.body[0]["due_at"]),
        (&json!("首办办结"), &json!(null)),
        "{}",
        inbox.body
    );
    let read = env.act(id, "首办办结", &petitions, json!({ "action": "mark_read" })).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(
        read.body["events"][0]["payload"],
        json!({ "event": "copy_read", "node": "首办办结", "office": "区信访局", "principal": "钱主任" })
    );
    assert_eq!(env.get("/v1/inbox", &petitions).await.body, json!([]));
    let step = env.step(id, "首办办结").await;
    assert_eq!(step["copies"][0]["office"], "区信访局");
    assert_eq!(step["copies"][0]["read_by"], "钱主任");
    assert_problem(
        &env.act(id, "首办办结", &petitions, json!({ "action": "mark_read" })).await,
        StatusCode::CONFLICT,
        "F058",
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_2_a_copy_for_information_on_sqlite() {
    issue_11_2_a_copy_for_information(Env::sqlite(true).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_2_a_copy_for_information_on_postgres() {
    if let Some(env) = Env::postgres_with("copy", true).await {
        issue_11_2_a_copy_for_information(env).await;
    }
}

/// 更正 through HTTP: the leadership group corrects the limit typed at the start, and the open
/// step's deadline moves across the 2012 Qingming holiday; a correction of the households that
/// would leave the completed registration short of representatives is refused, naming the step
/// and the rule, and nothing is recorded.
async fn issue_11_4_a_parameter_corrected(env: Env) {
    const CORRECTABLE: &str = r#"policy 更正演练 {
  param 户数: int
  param 办结时限: int
  role 领导小组 may correct
  role 承办
  let 代表下限: int = if 户数 <= 1500 { 50 } else { 50 + floor((户数 - 1500) / 100) }
  step 登记: task { by 承办 form { 代表人数: int require 代表人数 >= 代表下限 else "R2.6 居民代表人数不得少于下限" } }
  step 办理: task { by 承办 after 登记 due 办结时限 workdays }
}"#;
    let published = env
        .client
        .post(format!("{}/v1/policies", env.base))
        .bearer_auth(&env.admin)
        .header("content-type", "text/plain")
        .body(CORRECTABLE)
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), StatusCode::CREATED);
    let clerk = env.token("孙", "民政科", &["承办"]).await;
    let group = env.token("周组长", "街道办事处", &["领导小组"]).await;
    let start = json!({ "policy": "更正演练", "params": { "户数": 1600, "办结时限": 5 }, "id": "fix-1" });
    assert_eq!(env.post("/v1/instances", &clerk, start).await.status, StatusCode::CREATED);
    let id = "fix-1";
    let registered = json!({ "action": "submit_form", "data": { "代表人数": 55 } });
    assert_eq!(env.act(id, "登记", &clerk, registered).await.status, StatusCode::OK);
    // Wednesday 03-21 + 5 working days: the end of Wednesday 03-28.
    assert_eq!(env.step(id, "办理").await["due_at"], "2012-03-28T16:00:00Z");
    let path = format!("/v1/instances/{id}/corrections");
    let longer = json!({ "params": { "办结时限": 8 }, "reason": "时限录入有误" });
    assert_problem(&env.post(&path, &clerk, longer.clone()).await, StatusCode::FORBIDDEN, "F059");
    let blank = json!({ "params": { "办结时限": 8 }, "reason": " " });
    assert_problem(&env.post(&path, &group, blank).await, StatusCode::UNPROCESSABLE_ENTITY, "F018");
    let fixed = env.post(&path, &group, longer).await;
    assert_eq!(fixed.status, StatusCode::OK, "{}", fixed.body);
    // 8 working days: 03-29, 03-30, then the Saturday 03-31 made a working day for 清明.
    assert_eq!(
        fixed.body["events"][0]["payload"],
        json!({ "event": "corrected", "reason": "时限录入有误",
                "params": [{ "param": "办结时限", "from": { "number": "5" }, "to": { "number": "8" } }],
                "values": { "代表下限": { "number": "51" } },
                "steps": [{ "node": "办理", "due_at": "2012-03-31T16:00:00Z" }] })
    );
    assert_eq!(env.step(id, "办理").await["due_at"], "2012-03-31T16:00:00Z");
    let version = env.history_len(id).await;
    let short = json!({ "params": { "户数": 2100 }, "reason": "户数录入有误" });
    let refused = env.post(&path, &group, short).await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY, "F060");
    assert_eq!(
        refused.body["detail"],
        "the correction would make completed step `登记` invalid: R2.6 居民代表人数不得少于下限"
    );
    assert_eq!(env.history_len(id).await, version, "nothing recorded");
    let fits = env.post(&path, &group, json!({ "params": { "户数": 2000 }, "reason": "户数录入有误" })).await;
    assert_eq!(fits.status, StatusCode::OK, "{}", fits.body);
    let view = env.get(&format!("/v1/instances/{id}"), &group).await;
    assert_eq!((&view.body["params"]["户数"], &view.body["values"]["代表下限"]), (&json!(2000), &json!(55)));
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_4_a_parameter_corrected_on_sqlite() {
    issue_11_4_a_parameter_corrected(Env::sqlite(false).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_4_a_parameter_corrected_on_postgres() {
    if let Some(env) = Env::postgres_with("correct", false).await {
        issue_11_4_a_parameter_corrected(env).await;
    }
}
