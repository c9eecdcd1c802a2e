//! What relates one instance to others, through the durable runtime: the next cycle opened by
//! its timer exactly once (R0.3, R2.3, R3.7), caps across a cycle's instances enforced at commit
//! (R3.7), and a prerequisite in another procedure (R3.6).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use civicflow_dsl::value::Value;
use civicflow_engine::calendar::Calendar;
use civicflow_engine::clock::SimulatedClock;
use civicflow_engine::core::cycles::CycleLink;
use civicflow_engine::core::{Action, Actor, Event, Status};
use civicflow_engine::runtime::Runtime;
use civicflow_engine::store::{GroupCommitConfig, GroupCommitter, Store};

use crate::store::Harness;

const ASSESSMENT: &str = include_str!("../../../policies/community_assessment.cf");
const STABILITY: &str = include_str!("../../../policies/stability_assessment.cf");
const PROPERTY: &str = include_str!("../../../policies/property_service.cf");

/// R2.3 in small: a term of three years counted from the end of the election; the community
/// carries over, the next 开始 is the due date.
const TERM: &str = r#"
policy 换届 {
  param 社区名称: text
  param 开始: date
  role 街道党工委
  step 选举: task { by 街道党工委 }
  recur every 3 years from end(选举) carry 社区名称 dated 开始
}"#;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn actor(role: &str) -> Actor {
    Actor { principal: format!("{role}-李"), office: role.into(), role: role.into() }
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn runtime(store: Arc<dyn Store>, clock: Arc<SimulatedClock>, node: &str) -> Arc<Runtime> {
    let (committer, _task) = GroupCommitter::spawn(store.clone(), GroupCommitConfig::default());
    let calendar = Arc::new(Calendar::chinese().unwrap());
    Arc::new(Runtime::new(store, committer, clock, calendar, node.into()))
}

fn form(fields: &[(&str, Value)]) -> Action {
    Action::SubmitForm { data: fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect() }
}

async fn events(store: &dyn Store, id: &str) -> Vec<Event> {
    store
        .events(id, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_value((*e.payload).clone()).unwrap())
        .collect()
}

/// R0.3, R3.7: a monthly assessment started on 2025-01-01 opens exactly twelve more cycles by
/// 2026-01-01 (Feb … Dec, and January 2026), each on the first of its month at 00:00 +08:00,
/// each linked to the one before, the community carried over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r0_3_a_monthly_assessment_opens_twelve_cycles_in_a_simulated_year() {
    let h = Harness::sqlite().await;
    let clock = Arc::new(SimulatedClock::new(t("2025-01-01T01:00:00Z")));
    let rt = runtime(h.store.clone(), clock.clone(), "node-a");
    rt.publish(ASSESSMENT).await.unwrap();
    let params = BTreeMap::from([("社区名称".to_string(), text("东湖社区"))]);
    rt.start("考核-东湖", "community_assessment", None, &actor("街道办事处"), params, None).await.unwrap();
    let (_, first) = rt.load("考核-东湖").await.unwrap();
    assert_eq!(first.cycle.number(), 1);

    clock.advance_to(t("2025-12-31T16:00:00Z")).unwrap();
    rt.fire_all_due().await.unwrap();
    assert_eq!(rt.fire_all_due().await.unwrap(), 0, "every timer fired once");

    for n in 2..=13u32 {
        let id = format!("考核-东湖~{n}");
        let (record, state) = rt.load(&id).await.unwrap();
        let previous = if n == 2 { "考核-东湖".to_string() } else { format!("考核-东湖~{}", n - 1) };
        let (y, m) = if n <= 12 { (2025, n) } else { (2026, 1) };
        let due = DateTime::parse_from_rfc3339(&format!("{y}-{m:02}-01T00:00:00+08:00")).unwrap().with_timezone(&Utc);
        assert_eq!(record.created_at, due, "{id}");
        assert_eq!(state.cycle.number, n);
        assert_eq!(state.cycle.previous.as_deref(), Some(previous.as_str()));
        assert_eq!(state.params["社区名称"], text("东湖社区"));
        assert_eq!(state.params["考核月份"], Value::Date(chrono::NaiveDate::from_ymd_opt(y, m, 1).unwrap()), "{id}");
        match &events(h.store.as_ref(), &id).await[0] {
            Event::Started { cycle, .. } => {
                assert_eq!(cycle, &Some(CycleLink { number: n, previous: previous.clone() }))
            }
            other => panic!("{other:?}"),
        }
        // The cycle before records the opening exactly once.
        let opened: Vec<Event> = events(h.store.as_ref(), &previous)
            .await
            .into_iter()
            .filter(|e| matches!(e, Event::NextCycleOpened { .. }))
            .collect();
        assert_eq!(opened, [Event::NextCycleOpened { cycle: n, instance: id.clone(), due_at: due }]);
    }
    assert!(rt.load("考核-东湖~14").await.is_err(), "no thirteenth new cycle before 2026-02-01");
    // The last one waits for 2026-02-01.
    let pending = h.store.pending_timers("考核-东湖~13").await.unwrap();
    let next: Vec<DateTime<Utc>> = pending.iter().filter(|p| p.kind == "next_cycle").map(|p| p.due_at).collect();
    assert_eq!(next, [t("2026-01-31T16:00:00Z")]);
    h.finish().await;
}

/// R2.3, R0.3: the term ends with the election; three years after (R0.1: from the day after
/// its end) the next cycle opens — once, with two runtimes sharing PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2_3_the_next_term_opens_once_with_two_runtimes_on_postgres() {
    let Some(h) = Harness::postgres("next_term").await else { return };
    let Some(second) = h.second_store().await else { return };
    let clock = Arc::new(SimulatedClock::new(t("2020-05-20T02:00:00Z")));
    let a = runtime(h.store.clone(), clock.clone(), "node-a");
    let b = runtime(second, clock.clone(), "node-b");
    a.publish(TERM).await.unwrap();
    let leader = actor("街道党工委");
    for i in 0..20 {
        let params = BTreeMap::from([
            ("社区名称".to_string(), text(&format!("社区{i}"))),
            ("开始".to_string(), Value::Date(chrono::NaiveDate::from_ymd_opt(2020, 3, 21).unwrap())),
        ]);
        let id = format!("换届-{i:02}");
        a.start(&id, "换届", None, &leader, params, None).await.unwrap();
        a.act(&id, &leader, "选举", Action::Complete { report: "选举完成".into() }, None, None).await.unwrap();
        assert_eq!(a.load(&id).await.unwrap().1.status, Status::Completed);
    }
    // The election ended 2020-05-20 (+08:00): the term runs to the end of 2023-05-20.
    clock.advance_to(t("2023-05-20T15:59:59Z")).unwrap();
    assert_eq!(a.fire_all_due().await.unwrap() + b.fire_all_due().await.unwrap(), 0, "not yet due");
    clock.advance_to(t("2023-06-01T00:00:00Z")).unwrap();
    let (fa, fb) = tokio::join!(
        {
            let a = a.clone();
            async move { a.fire_all_due().await.unwrap() }
        },
        {
            let b = b.clone();
            async move { b.fire_all_due().await.unwrap() }
        }
    );
    assert_eq!(fa + fb, 20, "node a fired {fa}, node b fired {fb}");
    for i in 0..20 {
        let id = format!("换届-{i:02}");
        let opened = events(h.store.as_ref(), &id)
            .await
            .into_iter()
            .filter(|e| matches!(e, Event::NextCycleOpened { .. }))
            .count();
        assert_eq!(opened, 1, "{id}");
        let (record, state) = a.load(&format!("{id}~2")).await.unwrap();
        assert_eq!(record.created_at, t("2023-05-20T16:00:00Z"));
        assert_eq!(state.params["开始"], Value::Date(chrono::NaiveDate::from_ymd_opt(2023, 5, 21).unwrap()));
        assert_eq!(state.params["社区名称"], text(&format!("社区{i}")));
        assert_eq!(state.cycle.previous.as_deref(), Some(id.as_str()));
        assert_eq!(
            h.store.verify(&format!("{id}~2")).await.unwrap(),
            events(h.store.as_ref(), &format!("{id}~2")).await.len() as u64
        );
    }
    h.finish().await;
}

/// R0.3: where the next cycle needs fresh numbers, the engine opens a task for the role the
/// policy names; done with the numbers, it starts the next cycle, linked, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r0_3_a_next_cycle_that_needs_fresh_parameters_is_a_task_for_its_role() {
    let h = Harness::sqlite().await;
    let clock = Arc::new(SimulatedClock::new(t("2020-05-20T02:00:00Z")));
    let rt = runtime(h.store.clone(), clock.clone(), "node-a");
    let policy = TERM
        .replace("param 开始: date", "param 开始: date\n  param 党员人数: int")
        .replace("dated 开始", "dated 开始 by 街道党工委");
    rt.publish(&policy).await.unwrap();
    let leader = actor("街道党工委");
    let params = BTreeMap::from([
        ("社区名称".to_string(), text("东湖社区")),
        ("开始".to_string(), Value::Date(chrono::NaiveDate::from_ymd_opt(2020, 3, 21).unwrap())),
        ("党员人数".to_string(), Value::int(60)),
    ]);
    rt.start("换届-东湖", "换届", None, &leader, params, None).await.unwrap();
    rt.act("换届-东湖", &leader, "选举", Action::Complete { report: "完成".into() }, None, None).await.unwrap();
    clock.advance_to(t("2023-06-01T00:00:00Z")).unwrap();
    assert_eq!(rt.fire_all_due().await.unwrap(), 1);
    let (_, state) = rt.load("换届-东湖").await.unwrap();
    let next = state.cycle.next.clone().unwrap();
    assert_eq!(next.awaiting.as_deref(), Some("街道党工委"));
    assert!(!next.opened);
    assert!(rt.load("换届-东湖~2").await.is_err(), "no instance before the numbers are given");

    // Another role may not start it (403), and nothing is recorded.
    let version = state.version;
    let fresh = BTreeMap::from([("党员人数".to_string(), Value::int(72))]);
    let refused = rt.start_next_cycle("换届-东湖", &actor("社区党组织"), fresh.clone(), None).await.unwrap_err();
    assert_eq!(refused.code(), "F006");
    assert_eq!(rt.load("换届-东湖").await.unwrap().1.version, version);
    // A carried parameter cannot be given again.
    let carried = BTreeMap::from([("社区名称".to_string(), text("西湖社区"))]);
    let refused = rt.start_next_cycle("换届-东湖", &leader, carried, None).await.unwrap_err();
    assert_eq!(refused.code(), "F011");
    assert_eq!(rt.load("换届-东湖").await.unwrap().1.version, version);

    rt.start_next_cycle("换届-东湖", &leader, fresh.clone(), None).await.unwrap();
    let (_, next) = rt.load("换届-东湖~2").await.unwrap();
    assert_eq!(next.params["党员人数"], Value::int(72));
    assert_eq!(next.params["社区名称"], text("东湖社区"));
    assert_eq!(next.params["开始"], Value::Date(chrono::NaiveDate::from_ymd_opt(2023, 5, 21).unwrap()));
    let again = rt.start_next_cycle("换届-东湖", &leader, fresh, None).await.unwrap_err();
    assert_eq!(again.code(), "F042");
    h.finish().await;
}

/// R0.3: a next cycle that cannot start when it falls due (here its step's condition counts
/// working days into 2027, whose calendar is not published) is recorded once on the instance,
/// with the refusal, and not retried: nothing fires again, no instance is half made.
const MONTHLY_REPORT: &str = r#"
policy 月报 {
  param 月份: date = 2026-11-01
  role 街道
  step 汇总: task { by 街道 when 月份 + 25 workdays > 月份 }
  recur monthly on day 1 dated 月份
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r0_3_a_next_cycle_that_cannot_start_is_recorded_once_not_retried() {
    let h = Harness::sqlite().await;
    let clock = Arc::new(SimulatedClock::new(t("2026-11-01T01:00:00Z")));
    let rt = runtime(h.store.clone(), clock.clone(), "node-a");
    rt.publish(MONTHLY_REPORT).await.unwrap();
    rt.start("月报-东湖", "月报", None, &actor("街道"), BTreeMap::new(), None).await.unwrap();
    clock.advance_to(t("2026-12-01T02:00:00Z")).unwrap();
    assert_eq!(rt.fire_all_due().await.unwrap(), 1);
    let refused = events(h.store.as_ref(), "月报-东湖")
        .await
        .into_iter()
        .filter(|e| matches!(e, Event::NextCycleRefused { .. }))
        .collect::<Vec<_>>();
    let reason = "no working-day calendar for 2027 (covered: 2004-2026); working days in 2027 are not guessed \
                  from weekdays: an administrator adds the year (`civicflow calendar add 2027.json`)"
        .to_string();
    assert_eq!(
        refused,
        vec![Event::NextCycleRefused {
            cycle: 2,
            instance: "月报-东湖~2".into(),
            due_at: t("2026-11-30T16:00:00Z"),
            code: "F022".into(),
            reason: reason.clone(),
            role: None,
        }]
    );
    assert!(rt.load("月报-东湖~2").await.is_err(), "no instance is made");
    // Spent: the timer does not come back after its lease, on this node or another.
    clock.advance_to(t("2026-12-02T02:00:00Z")).unwrap();
    assert_eq!(rt.fire_all_due().await.unwrap(), 0);
    let other = runtime(h.store.clone(), clock.clone(), "node-b");
    assert_eq!(other.fire_all_due().await.unwrap(), 0);
    // Nobody may start it by hand either: the policy names no role for it.
    let by_hand = rt.start_next_cycle("月报-东湖", &actor("街道"), BTreeMap::new(), None).await.unwrap_err();
    assert_eq!(by_hand.code(), "F042");
    assert_eq!(
        by_hand.to_string(),
        format!("no next cycle is waiting to be started: it could not open (F022: {reason}) and the policy names no role to start it")
    );
    h.finish().await;
}

/// Ten communities assessed in March 2025, each ready to be rated.
async fn ten_communities(rt: &Runtime) {
    rt.publish(ASSESSMENT).await.unwrap();
    for i in 0..10 {
        let id = format!("考核-{i}");
        let params = BTreeMap::from([("社区名称".to_string(), text(&format!("社区{i}")))]);
        rt.start(&id, "community_assessment", None, &actor("街道办事处"), params, None).await.unwrap();
        rt.act(&id, &actor("社区居委会"), "自评", form(&[("自评报告", text("已完成"))]), None, None).await.unwrap();
    }
}

fn rating(grade: &str) -> Action {
    form(&[("等次", text(grade)), ("得分", Value::int(90))])
}

async fn quota(h: Harness) {
    let clock = Arc::new(SimulatedClock::new(t("2025-03-03T01:00:00Z")));
    let rt = runtime(h.store.clone(), clock, "node-a");
    ten_communities(&rt).await;
    let street = actor("街道办事处");
    rt.act("考核-0", &street, "考核评定", rating("优秀"), None, None).await.unwrap();
    // R3.7: 10 % of 10 is one; the second 优秀 is refused with the rule's words, nothing recorded.
    let before = rt.load("考核-1").await.unwrap().0.version;
    let refused = rt.act("考核-1", &street, "考核评定", rating("优秀"), None, None).await.unwrap_err();
    assert_eq!(refused.code(), "F040");
    assert_eq!(
        refused.to_string(),
        "step `考核评定`: 优秀社区不得超过本周期参评社区总数的10% (1 of the 10 instances of this cycle have it \
         already; at most 1 may)"
    );
    assert_eq!(rt.load("考核-1").await.unwrap().0.version, before);
    // 30 % of 10 is three 良好: two now, then two raters race for the last place.
    rt.act("考核-1", &street, "考核评定", rating("良好"), None, None).await.unwrap();
    rt.act("考核-2", &street, "考核评定", rating("良好"), None, None).await.unwrap();
    let v3 = rt.load("考核-3").await.unwrap().0.version;
    let v4 = rt.load("考核-4").await.unwrap().0.version;
    let (x, y) = tokio::join!(
        rt.act("考核-3", &street, "考核评定", rating("良好"), None, None),
        rt.act("考核-4", &street, "考核评定", rating("良好"), None, None)
    );
    let codes: Vec<&str> = [&x, &y].iter().filter_map(|r| r.as_ref().err().map(|e| e.code())).collect();
    assert_eq!(codes, ["F040"], "exactly one takes the last place: {x:?} {y:?}");
    let loser = if x.is_err() { ("考核-3", v3) } else { ("考核-4", v4) };
    assert_eq!(rt.load(loser.0).await.unwrap().0.version, loser.1, "the refused rating recorded nothing");
    let good = h.store.counter("community_assessment/2025-03/quota2").await.unwrap();
    assert_eq!(good, 3);
    // 合格 has no cap.
    rt.act(loser.0, &street, "考核评定", rating("合格"), None, None).await.unwrap();
    h.finish().await;
}

/// R3.7 on SQLite: the second 优秀 of ten is refused; of two concurrent ratings for the last
/// 良好 place exactly one succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_7_quota_on_sqlite() {
    quota(Harness::sqlite().await).await;
}

/// R3.7 on PostgreSQL: the same, the counter's compare-and-set under concurrent transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_7_quota_on_postgres() {
    if let Some(h) = Harness::postgres("quota").await {
        quota(h).await;
    }
}

/// R3.7: a rating reset by a return gives its place back. The assessment with a district review
/// (复核) that may send a rating back: the only 优秀 place of ten, taken by 考核-0, is free again
/// once the review rejects that rating, and 考核-1 may take it.
async fn quota_released_by_a_return(h: Harness) {
    let reviewed = ASSESSMENT.replace(
        "  step 结果反馈",
        "  role 区考核办\n  step 复核: approval {\n    by 区考核办\n    after 考核评定\n    on rejected return 考核评定\n  }\n  step 结果反馈",
    );
    assert_ne!(reviewed, ASSESSMENT);
    let clock = Arc::new(SimulatedClock::new(t("2025-03-03T01:00:00Z")));
    let rt = runtime(h.store.clone(), clock, "node-a");
    rt.publish(&reviewed).await.unwrap();
    for i in 0..10 {
        let id = format!("考核-{i}");
        let params = BTreeMap::from([("社区名称".to_string(), text(&format!("社区{i}")))]);
        rt.start(&id, "community_assessment", None, &actor("街道办事处"), params, None).await.unwrap();
        rt.act(&id, &actor("社区居委会"), "自评", form(&[("自评报告", text("已完成"))]), None, None).await.unwrap();
    }
    let street = actor("街道办事处");
    let key = "community_assessment/2025-03/quota1";
    rt.act("考核-0", &street, "考核评定", rating("优秀"), None, None).await.unwrap();
    assert_eq!(h.store.counter(key).await.unwrap(), 1);
    assert_eq!(rt.act("考核-1", &street, "考核评定", rating("优秀"), None, None).await.unwrap_err().code(), "F040");
    let review = Action::Reject { reason: "评分依据不足".into() };
    rt.act("考核-0", &actor("区考核办"), "复核", review, None, None).await.unwrap();
    assert_eq!(h.store.counter(key).await.unwrap(), 0, "the reset rating gave its place back");
    rt.act("考核-1", &street, "考核评定", rating("优秀"), None, None).await.unwrap();
    assert_eq!(h.store.counter(key).await.unwrap(), 1);
    // 考核-0 is rated again: the place is 考核-1's now.
    assert_eq!(rt.act("考核-0", &street, "考核评定", rating("优秀"), None, None).await.unwrap_err().code(), "F040");
    rt.act("考核-0", &street, "考核评定", rating("良好"), None, None).await.unwrap();
    assert_eq!(h.store.counter(key).await.unwrap(), 1);
    assert_eq!(h.store.counter("community_assessment/2025-03/quota2").await.unwrap(), 1);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_7_a_reset_rating_gives_its_quota_place_back_on_sqlite() {
    quota_released_by_a_return(Harness::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_7_a_reset_rating_gives_its_quota_place_back_on_postgres() {
    if let Some(h) = Harness::postgres("quota_release").await {
        quota_released_by_a_return(h).await;
    }
}

/// R3.6: the consent to demolition (R4.3) cannot be given before a stability-risk assessment of
/// the same matter has completed positive; a negative one stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_6_consent_needs_a_positive_stability_assessment() {
    let h = Harness::sqlite().await;
    let clock = Arc::new(SimulatedClock::new(t("2025-03-03T01:00:00Z")));
    let rt = runtime(h.store.clone(), clock, "node-a");
    rt.publish(PROPERTY).await.unwrap();
    rt.publish(STABILITY).await.unwrap();
    let party = actor("社区党组织");
    for (id, matter) in [("物业-1", "幸福路改建"), ("物业-2", "东街拆迁")] {
        let params = BTreeMap::from([
            ("小区名称".to_string(), text("幸福小区")),
            ("物业公司名称".to_string(), text("安居物业")),
            ("服务年度起始".to_string(), Value::Date(chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap())),
            ("涉及拆迁改建".to_string(), Value::Bool(true)),
        ]);
        rt.start(id, "property_service", None, &party, params, None).await.unwrap();
        let request = form(&[("事项", text(matter)), ("影响范围", text("沿街住户"))]);
        rt.act(id, &actor("建设单位"), "拆迁改建申请", request, None, None).await.unwrap();
    }
    let consent = || Action::Approve { comment: Some("同意".into()) };
    // Before any assessment: refused, nothing recorded.
    let before = rt.load("物业-1").await.unwrap().0.version;
    let refused = rt.act("物业-1", &party, "拆迁改建同意", consent(), None, None).await.unwrap_err();
    assert_eq!(refused.code(), "F041");
    assert_eq!(
        refused.to_string(),
        "step `拆迁改建同意`: 拆迁、道路改建须先经稳定风险评估,评估通过后方可同意 (there is no \
         completed `stability_assessment` of 事项 `幸福路改建`)"
    );
    assert_eq!(rt.load("物业-1").await.unwrap().0.version, before);

    // An assessment of each matter: 幸福路改建 positive, 东街拆迁 negative.
    for (id, matter, positive) in [("稳评-1", "幸福路改建", true), ("稳评-2", "东街拆迁", false)] {
        let params = BTreeMap::from([("事项".to_string(), text(matter)), ("事项类别".to_string(), text("征地拆迁"))]);
        rt.start(id, "stability_assessment", None, &actor("申请单位"), params, None).await.unwrap();
        let apply = form(&[("事项说明", text(matter)), ("涉及群众", Value::int(120))]);
        rt.act(id, &actor("申请单位"), "评估申请", apply, None, None).await.unwrap();
        // While it runs, the consent waits.
        let running = rt.act(&format!("物业-{}", &id[7..]), &party, "拆迁改建同意", consent(), None, None).await;
        assert_eq!(running.unwrap_err().code(), "F041");
        let level = if positive { "低" } else { "高" };
        let assessed = form(&[("风险等级", text(level)), ("评估意见", text("见报告"))]);
        rt.act(id, &actor("综治维稳办公室"), "风险评估", assessed, None, None).await.unwrap();
        for role in ["综治维稳办公室", "信访部门"] {
            let act = if positive {
                Action::Approve { comment: None }
            } else {
                Action::Reject { reason: "风险不可控".into() }
            };
            rt.act(id, &actor(role), "风险评估", act, None, None).await.unwrap();
        }
        let status = rt.load(id).await.unwrap().1.status;
        assert_eq!(status, if positive { Status::Completed } else { Status::Rejected });
    }
    rt.act("物业-1", &party, "拆迁改建同意", consent(), None, None).await.unwrap();
    let before = rt.load("物业-2").await.unwrap().0.version;
    let refused = rt.act("物业-2", &party, "拆迁改建同意", consent(), None, None).await.unwrap_err();
    assert_eq!(refused.code(), "F041");
    assert!(
        refused.to_string().ends_with("(the `stability_assessment` of 事项 `东街拆迁` ended negative)"),
        "{refused}"
    );
    assert_eq!(rt.load("物业-2").await.unwrap().0.version, before);
    h.finish().await;
}
