//! residents_demand.cf: 居民诉求"绿色通道" (R3.4–R3.6).

use civicflow_dsl::value::Value;
use civicflow_engine::core::{Event, NodeStatus, Outcome, Status};
use civicflow_engine::sim::{date, form, text, Simulation};

use super::*;

fn taken_in(category: &str) -> Simulation {
    let mut s = sim("residents_demand", "2012-05-07 09:00");
    s.start(&[("社区名称", text("舜耕社区")), ("诉求类别", text(category))]).unwrap();
    s.act(
        "社区居委会",
        "诉求受理",
        form(&[
            ("诉求人", text("张三")),
            ("联系电话", text("13800000000")),
            ("诉求内容", text("小区路灯损坏")),
            ("受理日期", date("2012-05-07")),
        ]),
    )
    .unwrap();
    s
}

fn feedback(satisfied: bool) -> civicflow_engine::core::Action {
    form(&[("诉求人", text("张三")), ("办理结果", text("路灯已修复")), ("居民满意", Value::Bool(satisfied))])
}

/// Forwarded to the livelihood office on 05-08, which names the owner on 05-09 09:00.
fn forwarded() -> Simulation {
    let mut s = taken_in("其他");
    s.advance_to("2012-05-08 10:00").unwrap();
    s.act("社区居委会", "社区研判", reject("需市政部门维修")).unwrap();
    s.advance_to("2012-05-09 09:00").unwrap();
    s.act("民生办", "民生办分流", form(&[("首办部门名称", text("市政公用局")), ("督办人", text("李四"))])).unwrap();
    s
}

#[test]
fn r3_4_happy_path_settled_by_the_community() {
    let mut s = taken_in("其他");
    // R3.6: an ordinary matter needs no stability-risk assessment.
    assert_eq!(s.state.values["需稳定风险评估"], Value::Bool(false));
    assert_eq!(s.status_of("稳定风险评估"), Some(NodeStatus::Skipped));
    assert_eq!(due(&s, "社区研判").as_deref(), Some("2012-05-11 00:00"));
    s.advance_to("2012-05-08 10:00").unwrap();
    s.act("社区居委会", "社区研判", approve()).unwrap();
    // 10 working days from 05-08: 05-09 … 05-22; the reminder 2 working days before.
    assert_eq!(due(&s, "社区办理").as_deref(), Some("2012-05-23 00:00"));
    s.advance_to("2012-05-15 10:00").unwrap();
    s.act("社区居委会", "社区办理", form(&[("办理结果", text("路灯已修复"))])).unwrap();
    // 3 days from 05-15: 05-18, a Friday.
    assert_eq!(due(&s, "社区反馈").as_deref(), Some("2012-05-19 00:00"));
    s.advance_to("2012-05-16 10:00").unwrap();
    s.act("社区居委会", "社区反馈", feedback(true)).unwrap();

    assert_eq!(s.state.status, Status::Completed);
    // The livelihood office's branch was not taken: none of its steps opened.
    for node in ["民生办分流", "首办受理", "首办办结", "部门反馈", "预警信息上报"] {
        assert_eq!(s.status_of(node), Some(NodeStatus::Skipped), "{node}");
    }
    assert_eq!(timer_events(&s), vec![], "nothing was late");
    assert_eq!(
        s.history.last().map(|(e, t)| (e.clone(), local(*t))),
        Some((Event::InstanceCompleted, "2012-05-16 10:00".into()))
    );
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r3_4_happy_path_forwarded_to_the_first_receiving_department() {
    let mut s = forwarded();
    assert_eq!(s.status_of("社区办理"), Some(NodeStatus::Skipped));
    assert_eq!(s.status_of("社区反馈"), Some(NodeStatus::Skipped));
    // 首办负责制: the department takes it in within one working day …
    assert_eq!(due(&s, "首办受理").as_deref(), Some("2012-05-11 00:00"));
    s.advance_to("2012-05-10 09:00").unwrap();
    s.act("首办部门", "首办受理", done("已受理")).unwrap();
    // … and settles it within 15 working days (05-11 … 05-31).
    assert_eq!(due(&s, "首办办结").as_deref(), Some("2012-06-01 00:00"));
    s.advance_to("2012-05-25 15:00").unwrap();
    s.act("首办部门", "首办办结", form(&[("办理结果", text("路灯已修复"))])).unwrap();
    assert_eq!(due(&s, "部门反馈").as_deref(), Some("2012-05-29 00:00"));
    s.advance_to("2012-05-26 10:00").unwrap();
    s.act("首办部门", "部门反馈", feedback(true)).unwrap();

    assert_eq!(s.state.status, Status::Completed);
    assert_eq!(timer_events(&s), vec![]);
    assert_eq!(s.state.nodes["民生办分流"].form.as_ref().unwrap()["首办部门名称"], text("市政公用局"));
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r3_4_the_first_receiving_department_cannot_refuse_the_matter() {
    let mut s = forwarded();
    let r = s.act("首办部门", "首办受理", reject("不属于本部门职责")).unwrap_err();
    assert_eq!(r.code(), "F010");
    assert_eq!(
        r.to_string(),
        "`reject` does not apply to step `首办受理`, a task step; it takes `submit_form`, `complete`, `return_to`, `withdraw`, `delegate`, `urge`"
    );
    let r = s.act("社区居委会", "首办受理", done("代为受理")).unwrap_err();
    assert_eq!(r.code(), "F006");
}

#[test]
fn r3_5_a_lapsed_limit_is_escalated_at_the_deadline_instant() {
    let mut s = forwarded();
    let before = s.history.len();
    // The department lets the day of 首办受理 lapse.
    s.advance_to("2012-05-11 09:00").unwrap();
    let due1 = at("2012-05-11 00:00");
    let node = "首办受理".to_string();
    assert_eq!(
        s.history[before..].to_vec(),
        vec![
            (Event::Overdue { node: node.clone(), due_at: due1 }, due1),
            (Event::Escalated { node: node.clone(), role: "部门主要领导".into(), due_at: due1 }, due1),
            (Event::Escalated { node: node.clone(), role: "部门分管领导".into(), due_at: due1 }, due1),
            (Event::Notified { node: node.clone(), role: "民生办".into(), due_at: due1 }, due1),
        ]
    );
    assert_eq!(s.state.nodes["首办受理"].escalated_to, ["部门主要领导", "部门分管领导"]);
    // Late work is still taken and recorded; the limit of 15 working days runs from 05-11.
    s.act("首办部门", "首办受理", done("已受理")).unwrap();
    assert!(s.state.nodes["首办受理"].overdue);
    assert_eq!(due(&s, "首办办结").as_deref(), Some("2012-06-02 00:00"));
    let before = s.history.len();
    s.advance_to("2012-06-04 09:00").unwrap();
    let due2 = at("2012-06-02 00:00");
    let node = "首办办结".to_string();
    assert_eq!(
        s.history[before..].to_vec(),
        vec![
            // Three working days before the limit: 06-01, 05-31, 05-30.
            (Event::Reminded { node: node.clone(), due_at: due2 }, at("2012-05-30 00:00")),
            (Event::Overdue { node: node.clone(), due_at: due2 }, due2),
            (Event::Escalated { node: node.clone(), role: "部门主要领导".into(), due_at: due2 }, due2),
            (Event::Escalated { node: node.clone(), role: "部门分管领导".into(), due_at: due2 }, due2),
            (Event::Notified { node: node.clone(), role: "民生办".into(), due_at: due2 }, due2),
        ]
    );
    s.act("首办部门", "首办办结", form(&[("办理结果", text("路灯已修复"))])).unwrap();
    s.act("首办部门", "部门反馈", feedback(false)).unwrap();
    assert_eq!(s.state.status, Status::Completed);
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r3_6_a_land_requisition_demand_is_assessed_before_it_is_handled() {
    let mut s = taken_in("征地拆迁");
    assert_eq!(s.state.values["需稳定风险评估"], Value::Bool(true));
    assert_eq!(s.status_of("稳定风险评估"), Some(NodeStatus::Open));
    let r = s.act("社区居委会", "社区研判", approve()).unwrap_err();
    assert_eq!(r.to_string(), "step `社区研判` is waiting for earlier steps, not open for action");
    let r = s.act("综治维稳办公室", "稳定风险评估", approve()).unwrap_err();
    assert_eq!(r.to_string(), "step `稳定风险评估`, field `风险等级, 评估意见`: submit the form first");
    let r = s
        .act("综治维稳办公室", "稳定风险评估", form(&[("风险等级", text("极高")), ("评估意见", text("群众意见较大"))]))
        .unwrap_err();
    assert_eq!(r.to_string(), "step `稳定风险评估`: 风险等级须为低、中或高");
    s.act("综治维稳办公室", "稳定风险评估", form(&[("风险等级", text("高")), ("评估意见", text("群众意见较大"))]))
        .unwrap();
    s.act("综治维稳办公室", "稳定风险评估", reject("风险较高")).unwrap();
    assert_eq!(s.status_of("稳定风险评估"), Some(NodeStatus::Open), "two of three can still approve");
    s.act("信访部门", "稳定风险评估", reject("信访量大")).unwrap();
    assert_eq!(s.state.nodes["稳定风险评估"].outcome, Some(Outcome::Rejected));
    // A high risk does not stop the demand: a warning goes up and the community decides.
    assert_eq!(s.status_of("预警信息上报"), Some(NodeStatus::Open));
    assert_eq!(s.status_of("社区研判"), Some(NodeStatus::Open));
    s.act("上级综治部门", "预警信息上报", file()).unwrap();
    assert_eq!(s.state.nodes["预警信息上报"].outcome, Some(Outcome::Filed));
    s.act("社区居委会", "社区研判", approve()).unwrap();
    s.act("社区居委会", "社区办理", form(&[("办理结果", text("协调补偿方案"))])).unwrap();
    s.act("社区居委会", "社区反馈", feedback(true)).unwrap();
    assert_eq!(s.state.status, Status::Completed);
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r3_6_an_acceptable_risk_sends_no_warning() {
    let mut s = taken_in("建设改造");
    s.act("综治维稳办公室", "稳定风险评估", form(&[("风险等级", text("低")), ("评估意见", text("可控"))])).unwrap();
    s.act("综治维稳办公室", "稳定风险评估", approve()).unwrap();
    s.act("社区警务室", "稳定风险评估", approve()).unwrap();
    assert_eq!(s.state.nodes["稳定风险评估"].outcome, Some(Outcome::Approved));
    assert_eq!(s.status_of("预警信息上报"), Some(NodeStatus::Skipped));
    assert_eq!(s.status_of("社区研判"), Some(NodeStatus::Open));
}

fn pass_back(reason: &str) -> civicflow_engine::core::Action {
    civicflow_engine::core::Action::ReturnTo { target: "民生办分流".into(), reason: reason.into() }
}

/// Forwarded, taken in on 05-10 09:00: 首办办结's limit is 2012-06-01 00:00 (15 working days).
fn owned() -> Simulation {
    let mut s = forwarded();
    s.advance_to("2012-05-10 09:00").unwrap();
    s.act("首办部门", "首办受理", done("已受理")).unwrap();
    assert_eq!(due(&s, "首办办结").as_deref(), Some("2012-06-01 00:00"));
    s
}

/// Issue 8, R3.5: a department that passes the matter back (推诿) is recorded and escalated to
/// the accountable leaders at that instant; the owner's limit is not reset: when the matter comes
/// back, 首办办结 keeps the deadline of 06-01, and the breach falls at that instant.
#[test]
fn r3_5_passing_the_matter_back_is_escalated_at_once_and_the_limit_runs_on() {
    let mut s = owned();
    s.advance_to("2012-05-14 10:00").unwrap();
    let before = s.history.len();
    s.act("首办部门", "首办办结", pass_back("不属于本部门职责")).unwrap();
    let limit = at("2012-06-01 00:00");
    let now = at("2012-05-14 10:00");
    let node = "首办办结".to_string();
    assert_eq!(
        s.history[before..before + 5].to_vec(),
        vec![
            (Event::PassedOn { node: node.clone(), to: "民生办分流".into(), due_at: Some(limit) }, now),
            (Event::Escalated { node: node.clone(), role: "部门主要领导".into(), due_at: limit }, now),
            (Event::Escalated { node: node.clone(), role: "部门分管领导".into(), due_at: limit }, now),
            (Event::Notified { node: node.clone(), role: "民生办".into(), due_at: limit }, now),
            (
                Event::Returned {
                    from: node.clone(),
                    to: "民生办分流".into(),
                    reason: "不属于本部门职责".into(),
                    reset: vec!["民生办分流".into(), "首办办结".into(), "首办受理".into()],
                    reopened: vec![],
                },
                now
            ),
        ]
    );
    assert_eq!(tail(&s, before + 5), [("opened", "民生办分流".to_string(), "2012-05-14 10:00".to_string())]);
    assert_eq!(s.status_of("首办办结"), Some(NodeStatus::Waiting));
    assert_eq!(s.state.nodes["首办办结"].kept_limit, Some(limit));
    assert_eq!(s.state.nodes["首办办结"].escalated_to, ["部门主要领导", "部门分管领导"]);
    // The livelihood office names another department; it takes the matter in …
    s.advance_to("2012-05-15 09:00").unwrap();
    s.act("民生办", "民生办分流", form(&[("首办部门名称", text("区住建局")), ("督办人", text("李四"))])).unwrap();
    s.advance_to("2012-05-15 11:00").unwrap();
    s.act("首办部门", "首办受理", done("已受理")).unwrap();
    // … and has what is left of the limit, not 15 new working days (which would end 06-06).
    assert_eq!(due(&s, "首办办结").as_deref(), Some("2012-06-01 00:00"));
    let before = s.history.len();
    s.advance_to("2012-06-01 09:00").unwrap();
    assert_eq!(
        s.history[before..].to_vec(),
        vec![
            // The reminder three working days before the original limit (05-29), as it would have been.
            (Event::Reminded { node: node.clone(), due_at: limit }, at("2012-05-29 00:00")),
            (Event::Overdue { node: node.clone(), due_at: limit }, limit),
            (Event::Escalated { node: node.clone(), role: "部门主要领导".into(), due_at: limit }, limit),
            (Event::Escalated { node: node.clone(), role: "部门分管领导".into(), due_at: limit }, limit),
            (Event::Notified { node: node.clone(), role: "民生办".into(), due_at: limit }, limit),
        ]
    );
    assert_eq!(s.replayed(), s.state);
}

/// Issue 8, R3.5: the limit runs while the matter waits to be reassigned: the breach is
/// recorded at the original instant, and the step, when it opens again, is already overdue
/// (no second breach).
#[test]
fn r3_5_the_limit_breaches_at_the_original_instant_while_the_matter_waits() {
    let mut s = owned();
    s.advance_to("2012-05-30 10:00").unwrap();
    s.act("首办部门", "首办办结", pass_back("不属于本部门职责")).unwrap();
    let before = s.history.len();
    s.advance_to("2012-06-01 09:00").unwrap();
    let limit = at("2012-06-01 00:00");
    let node = "首办办结".to_string();
    let breach: Vec<_> = s.history[before..].iter().filter(|(e, _)| e.node() == Some("首办办结")).cloned().collect();
    assert_eq!(
        breach,
        vec![
            (Event::Overdue { node: node.clone(), due_at: limit }, limit),
            (Event::Escalated { node: node.clone(), role: "部门主要领导".into(), due_at: limit }, limit),
            (Event::Escalated { node: node.clone(), role: "部门分管领导".into(), due_at: limit }, limit),
            (Event::Notified { node: node.clone(), role: "民生办".into(), due_at: limit }, limit),
        ]
    );
    assert_eq!(s.status_of("首办办结"), Some(NodeStatus::Waiting));
    s.act("民生办", "民生办分流", form(&[("首办部门名称", text("区住建局")), ("督办人", text("李四"))])).unwrap();
    s.act("首办部门", "首办受理", done("已受理")).unwrap();
    assert_eq!(due(&s, "首办办结").as_deref(), Some("2012-06-01 00:00"));
    assert!(s.state.nodes["首办办结"].overdue);
    let before = s.history.len();
    s.advance_to("2012-06-20 09:00").unwrap();
    assert!(
        s.history[before..].iter().all(|(e, _)| e.node() != Some("首办办结")),
        "no second breach of the same limit"
    );
    assert_eq!(s.replayed(), s.state);
}

/// Issue 8, R3.5: only the return the policy declares (back to the livelihood office, by the
/// department) is accepted; urging is for the livelihood office and, once escalated, the leaders.
#[test]
fn r3_5_only_the_declared_return_and_the_named_urgers_are_accepted() {
    let mut s = owned();
    let before = s.history.len();
    let sideways =
        civicflow_engine::core::Action::ReturnTo { target: "诉求受理".into(), reason: "退回社区".into() };
    let r = s.act("首办部门", "首办办结", sideways).unwrap_err();
    assert_eq!(r.code(), "F030");
    assert!(r.to_string().ends_with("this step allows a return to `民生办分流` by `首办部门`"), "{r}");
    let r = s.act("民生办", "首办办结", pass_back("改派")).unwrap_err();
    assert_eq!(r.code(), "F030");
    let urge = || civicflow_engine::core::Action::Urge { message: Some("请尽快办结".into()) };
    let r = s.act("部门主要领导", "首办办结", urge()).unwrap_err();
    assert_eq!(r.code(), "F031");
    assert_eq!(r.to_string(), "role `部门主要领导` may not urge step `首办办结`; urging is for `民生办` (named by the policy or escalated to)");
    let r = s.act("社区居委会", "首办办结", urge()).unwrap_err();
    assert_eq!(r.code(), "F031");
    assert_eq!(s.history.len(), before, "refusals record nothing");
    s.act("民生办", "首办办结", urge()).unwrap();
    assert_eq!(tail(&s, before), [("urged", "首办办结".to_string(), "2012-05-10 09:00".to_string())]);
    // Once the limit lapses and the leaders are escalated to, they may urge.
    s.advance_to("2012-06-01 09:00").unwrap();
    s.act("部门主要领导", "首办办结", urge()).unwrap();
    assert_eq!(s.history.last().map(|(e, _)| e.kind()), Some("urged"));
}
