//! community_access.cf: 社区工作准入 (R3.1–R3.3).

use civicflow_dsl::value::Value;
use civicflow_engine::core::{Action, Event, NodeStatus, Outcome, Status};
use civicflow_engine::sim::{date, form, int, text, Simulation};

use super::*;

fn request(staff: i64, funding: i64, conditions: &str) -> Action {
    form(&[
        ("协助内容", text("协助开展城乡居民医疗保险参保登记")),
        ("联系人", record(&[("姓名", text("王五")), ("电话", text("0531-12345678"))])),
        ("配备人员数", int(staff)),
        ("工作经费", int(funding)),
        ("工作条件", text(conditions)),
        ("开始协助日期", date("2012-06-01")),
    ])
}

/// The request filed on 2012-05-07 09:00.
fn requested() -> Simulation {
    let mut s = sim("community_access", "2012-05-07 09:00");
    s.start(&[("申请部门", text("区人社局")), ("事项名称", text("医保参保登记")), ("社区名称", text("舜耕社区"))])
        .unwrap();
    s.act("职能部门", "准入申请", request(2, 20000, "办公桌椅及电脑一套")).unwrap();
    s
}

fn decided(s: &mut Simulation, opinion: &str, action: Action) {
    s.act("区社区建设指导机构", "准入审批", form(&[("审批意见", text(opinion))])).unwrap();
    s.act("区社区建设指导机构", "准入审批", action).unwrap();
}

fn arrived(staff: bool, funding: bool) -> Action {
    form(&[("人员已到位", Value::Bool(staff)), ("经费已到位", Value::Bool(funding))])
}

#[test]
fn r3_1_happy_path_approved_and_taken_on_by_the_community() {
    let mut s = requested();
    // 20 working days from 05-07: 05-08 … 06-04.
    assert_eq!(due(&s, "准入审批").as_deref(), Some("2012-06-05 00:00"));
    s.advance_to("2012-05-10 10:00").unwrap();
    decided(&mut s, "同意准入,人员经费随事项到位", approve());
    assert_eq!(s.state.nodes["准入审批"].outcome, Some(Outcome::Approved));
    assert_eq!(s.status_of("社区决定是否协助"), Some(NodeStatus::Skipped));
    assert_eq!(s.status_of("自愿协助"), Some(NodeStatus::Skipped));
    // 10 working days from 05-10: 05-11 … 05-24.
    assert_eq!(due(&s, "社区承接").as_deref(), Some("2012-05-25 00:00"));
    s.advance_to("2012-05-14 09:00").unwrap();
    let r = s.act("社区居委会", "社区承接", arrived(true, false)).unwrap_err();
    assert_eq!(r.to_string(), "step `社区承接`: R3.2 人员和经费到位后方可承接");
    s.act("社区居委会", "社区承接", arrived(true, true)).unwrap();
    assert_eq!(s.state.status, Status::Completed);
    assert_eq!(timer_events(&s), vec![]);
    assert_eq!(
        events_of(&s, "准入审批"),
        [
            ("opened", "2012-05-07 09:00".to_string()),
            ("form_recorded", "2012-05-10 10:00".to_string()),
            ("acted", "2012-05-10 10:00".to_string()),
            ("completed", "2012-05-10 10:00".to_string()),
        ]
    );
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r3_1_the_decision_states_its_opinion() {
    let mut s = requested();
    let r = s.act("市社区建设指导机构", "准入审批", approve()).unwrap_err();
    assert_eq!(r.to_string(), "step `准入审批`, field `审批意见`: submit the form first");
    let r = s.act("市社区建设指导机构", "准入审批", form(&[("审批意见", text(""))])).unwrap_err();
    assert_eq!(r.to_string(), "step `准入审批`: R3.1 须写明审批意见(批准或不予批准的理由)");
    // Either level of the guidance body decides (或签).
    s.act("市社区建设指导机构", "准入审批", form(&[("审批意见", text("同意"))])).unwrap();
    s.act("市社区建设指导机构", "准入审批", approve()).unwrap();
    assert_eq!(s.state.nodes["准入审批"].outcome, Some(Outcome::Approved));
    let r = s.act("职能部门", "社区承接", arrived(true, true)).unwrap_err();
    assert_eq!(r.to_string(), "role `职能部门` may not act on step `社区承接`; it is for `社区居委会`");
}

#[test]
fn r3_2_a_request_without_staff_funding_or_conditions_is_refused() {
    let mut s = sim("community_access", "2012-05-07 09:00");
    s.start(&[("申请部门", text("区人社局")), ("事项名称", text("医保参保登记")), ("社区名称", text("舜耕社区"))])
        .unwrap();
    let started = s.history.len();
    let r = s.act("职能部门", "准入申请", request(0, 20000, "办公桌椅")).unwrap_err();
    assert_eq!(r.code(), "F013");
    assert_eq!(r.to_string(), "step `准入申请`: R3.2 权随责走:须写明随事项配备的工作人员(至少1人)");
    let r = s.act("职能部门", "准入申请", request(2, 0, "办公桌椅")).unwrap_err();
    assert_eq!(r.to_string(), "step `准入申请`: R3.2 费随事转:须写明随事项拨付的工作经费(大于0元)");
    let r = s.act("职能部门", "准入申请", request(2, 20000, "")).unwrap_err();
    assert_eq!(r.to_string(), "step `准入申请`: R3.2 须写明随事项提供的工作条件");
    let Action::SubmitForm { mut data } = request(2, 20000, "办公桌椅") else { unreachable!() };
    data.remove("工作经费");
    let r = s.act("职能部门", "准入申请", Action::SubmitForm { data }).unwrap_err();
    assert_eq!(r.code(), "F012");
    assert_eq!(r.to_string(), "step `准入申请`, field `工作经费`: is required (decimal)");
    assert_eq!(s.history.len(), started, "a refused request records nothing");
    assert_eq!(s.status_of("准入审批"), Some(NodeStatus::Waiting));
    s.act("职能部门", "准入申请", request(1, 1, "办公桌椅")).unwrap();
    assert_eq!(s.status_of("准入审批"), Some(NodeStatus::Open));
}

#[test]
fn r3_3_an_approved_matter_cannot_be_refused_by_the_community() {
    let mut s = requested();
    decided(&mut s, "同意准入", approve());
    let r = s.act("社区居委会", "社区承接", reject("社区人手不足")).unwrap_err();
    assert_eq!(r.code(), "F010");
    assert_eq!(
        r.to_string(),
        "`reject` does not apply to step `社区承接`, a task step; it takes `submit_form`, `complete`, `return_to`, `withdraw`, `delegate`, `urge`"
    );
    let r = s.act("社区居委会", "社区决定是否协助", reject("社区人手不足")).unwrap_err();
    assert_eq!(r.code(), "F005");
    assert_eq!(r.to_string(), "step `社区决定是否协助` is skipped, not open for action");
    // Left undone, it is overdue and the guidance body is told; it is not refused.
    s.advance_to("2012-05-25 09:00").unwrap();
    assert_eq!(
        timer_events(&s),
        vec![
            // 10 working days from 05-07: 05-08 … 05-21; reminder 2 working days before.
            (Event::Reminded { node: "社区承接".into(), due_at: at("2012-05-22 00:00") }, "2012-05-18 00:00".into()),
            (Event::Overdue { node: "社区承接".into(), due_at: at("2012-05-22 00:00") }, "2012-05-22 00:00".into()),
            (
                Event::Notified {
                    node: "社区承接".into(),
                    role: "区社区建设指导机构".into(),
                    due_at: at("2012-05-22 00:00")
                },
                "2012-05-22 00:00".into()
            ),
        ]
    );
    assert_eq!(s.state.status, Status::Running);
}

#[test]
fn r3_3_after_a_rejection_the_community_may_refuse() {
    let mut s = requested();
    decided(&mut s, "未落实人员经费,不予准入", reject("未落实人员经费"));
    assert_eq!(s.status_of("社区承接"), Some(NodeStatus::Skipped));
    assert_eq!(s.status_of("社区决定是否协助"), Some(NodeStatus::Open));
    let before = s.history.len();
    s.act("社区党组织", "社区决定是否协助", reject("未经批准,不予协助")).unwrap();
    assert_eq!(s.status_of("社区决定是否协助"), Some(NodeStatus::Open), "a majority of three is still possible");
    s.act("社区居委会", "社区决定是否协助", reject("未经批准,不予协助")).unwrap();
    assert_eq!(s.state.nodes["社区决定是否协助"].outcome, Some(Outcome::Rejected));
    assert_eq!(s.state.status, Status::Rejected);
    assert_eq!(
        tail(&s, before),
        [
            ("acted", "社区决定是否协助".to_string(), "2012-05-07 09:00".to_string()),
            ("acted", "社区决定是否协助".to_string(), "2012-05-07 09:00".to_string()),
            ("completed", "社区决定是否协助".to_string(), "2012-05-07 09:00".to_string()),
            ("instance_rejected", "社区决定是否协助".to_string(), "2012-05-07 09:00".to_string()),
        ]
    );
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r3_3_after_a_rejection_the_community_may_still_choose_to_help() {
    let mut s = requested();
    decided(&mut s, "不予准入", reject("不属于社区职责"));
    s.act("社区居委会", "社区决定是否协助", approve()).unwrap();
    s.act("社区服务中心", "社区决定是否协助", approve()).unwrap();
    assert_eq!(s.state.nodes["社区决定是否协助"].outcome, Some(Outcome::Approved));
    let r = s.act("社区居委会", "自愿协助", arrived(false, true)).unwrap_err();
    assert_eq!(r.to_string(), "step `自愿协助`: R3.2 人员和经费到位后方可协助");
    s.act("社区居委会", "自愿协助", arrived(true, true)).unwrap();
    assert_eq!(s.state.status, Status::Completed);
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r3_3_an_undecided_request_counts_as_not_approved_and_an_undecided_community_as_refusing() {
    let mut s = requested();
    let before = s.history.len();
    s.advance_to("2012-06-30 09:00").unwrap();
    let due1 = at("2012-06-05 00:00");
    // 10 working days from 06-05: 06-06 … 06-19.
    let due2 = at("2012-06-20 00:00");
    assert_eq!(
        s.history[before..].iter().map(|(e, t)| (e.clone(), local(*t))).collect::<Vec<_>>(),
        vec![
            // R3.1: reminder 5 working days before the 20-working-day limit.
            (Event::Reminded { node: "准入审批".into(), due_at: due1 }, "2012-05-29 00:00".into()),
            (Event::Overdue { node: "准入审批".into(), due_at: due1 }, "2012-06-05 00:00".into()),
            (Event::Completed { node: "准入审批".into(), outcome: Outcome::Rejected }, "2012-06-05 00:00".into()),
            (
                Event::Notified { node: "准入审批".into(), role: "职能部门".into(), due_at: due1 },
                "2012-06-05 00:00".into()
            ),
            (
                Event::Skipped { node: "社区承接".into(), reason: "`准入审批` was not approved".into() },
                "2012-06-05 00:00".into()
            ),
            (
                Event::Opened {
                    node: "社区决定是否协助".into(), window: None, due_at: Some(due2), min_until: None
                },
                "2012-06-05 00:00".into()
            ),
            (Event::Overdue { node: "社区决定是否协助".into(), due_at: due2 }, "2012-06-20 00:00".into()),
            (
                Event::Completed { node: "社区决定是否协助".into(), outcome: Outcome::Rejected },
                "2012-06-20 00:00".into()
            ),
            (Event::InstanceRejected { node: "社区决定是否协助".into() }, "2012-06-20 00:00".into()),
        ]
    );
    assert_eq!(s.state.status, Status::Rejected);
    assert_eq!(s.replayed(), s.state);
}

/// Issue 8, R3.3: the community may not send an approved matter back to be decided again. The
/// policy declares no return on 社区承接, so the return by hand is refused and nothing is
/// recorded; the guidance body's own step cannot be sent back by the community either.
#[test]
fn r3_3_the_community_cannot_send_an_approved_matter_back() {
    let mut s = requested();
    decided(&mut s, "同意准入", approve());
    assert_eq!(s.state.nodes["准入审批"].outcome, Some(Outcome::Approved));
    let before = s.history.len();
    let back = |target: &str| Action::ReturnTo { target: target.into(), reason: "请重新审批".into() };
    let r = s.act("社区居委会", "社区承接", back("准入审批")).unwrap_err();
    assert_eq!(r.code(), "F030");
    assert_eq!(
        r.to_string(),
        "role `社区居委会` may not send step `社区承接` back to `准入审批`: a matter is returned only where the policy \
         allows it; a filing cannot veto (R2.18), an approved matter is not sent back to be decided again (R3.3); \
         this step allows no return"
    );
    let r = s.act("社区居委会", "社区承接", back("准入申请")).unwrap_err();
    assert_eq!(r.code(), "F030");
    // Another office that does not hold the step learns no more than that (403 first).
    let r = s.act("职能部门", "社区承接", back("准入审批")).unwrap_err();
    assert_eq!(r.code(), "F030");
    let r = s.act("局外人", "社区承接", back("准入审批")).unwrap_err();
    assert_eq!(r.code(), "F006");
    assert_eq!(s.history.len(), before, "a refused return records nothing");
    assert_eq!(s.status_of("社区承接"), Some(NodeStatus::Open));
    assert_eq!(s.status_of("准入审批"), Some(NodeStatus::Done));
}
