//! property_service.cf: 物业服务监督与社区党组织同意事项 (R4.1–R4.3).

use civicflow_dsl::value::Value;
use civicflow_engine::core::{Action, Event, NodeStatus, Outcome, Refusal, Status};
use civicflow_engine::sim::{date, form, int, text, Simulation};

use super::*;

fn started(now: &str, extra: &[(&str, Value)]) -> Simulation {
    let mut s = sim("property_service", now);
    let mut params = vec![("小区名称", text("阳光小区")), ("物业公司名称", text("宏达物业"))];
    params.extend(extra.iter().cloned());
    s.start(&params).unwrap();
    s
}

fn rating(rated: i64, satisfied: i64, conclusion: &str) -> Action {
    form(&[("参评人数", int(rated)), ("满意人数", int(satisfied)), ("评议结论", text(conclusion))])
}

#[test]
fn r4_2_happy_path_the_year_end_rating_keeps_the_company() {
    let mut s = started("2012-01-04 09:00", &[]);
    // Nothing is entered, demolished or promoted this year.
    for node in
        ["进驻申请", "进驻同意", "合同报街道备案", "合同报社区备案", "拆迁改建申请", "拆迁改建同意", "提拔征求意见"]
    {
        assert_eq!(s.status_of(node), Some(NodeStatus::Skipped), "{node}");
    }
    // 每年末: the last month of the service year that starts on the default 2012-01-01.
    assert_eq!(s.state.params["服务年度起始"], date("2012-01-01"));
    assert_eq!(window(&s, "年终评议"), Some(("2012-12-01 00:00".into(), "2013-01-01 00:00".into())));
    s.advance_to("2012-11-30 10:00").unwrap();
    let r = s.act("社区党组织", "年终评议/组织评议", done("已通知业主委员会")).unwrap_err();
    assert_eq!(r, Refusal::WindowNotOpen { node: "年终评议/组织评议".into(), opens: "2012-12-01 00:00 +08:00".into() });
    s.advance_to("2012-12-03 09:00").unwrap();
    s.act("社区党组织", "年终评议/组织评议", done("已通知业主委员会")).unwrap();
    s.act("业主委员会", "年终评议/服务评议", rating(120, 90, "继续履行")).unwrap();
    // 10 and 5 working days from 12-03.
    assert_eq!(due(&s, "年终评议/评议结果处理").as_deref(), Some("2012-12-18 00:00"));
    assert_eq!(due(&s, "年终评议/考核征求街道意见").as_deref(), Some("2012-12-11 00:00"));
    s.advance_to("2012-12-05 10:00").unwrap();
    s.act("社区党组织", "年终评议/评议结果处理", approve()).unwrap();
    assert_eq!(s.status_of("年终评议/依法解除合同"), Some(NodeStatus::Skipped));
    s.act("街道办事处", "年终评议/考核征求街道意见", opinion("服务规范,同意评为合格")).unwrap();
    s.act("社区党组织", "年终评议/考核征求社区意见", opinion("居民反映较好")).unwrap();

    assert_eq!(s.state.status, Status::Completed);
    assert_eq!(timer_events(&s), vec![]);
    assert_eq!(
        events_of(&s, "年终评议/服务评议"),
        [
            ("opened", "2012-12-03 09:00".to_string()),
            ("form_recorded", "2012-12-03 09:00".to_string()),
            ("completed", "2012-12-03 09:00".to_string()),
        ]
    );
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r4_2_satisfaction_below_half_terminates_the_contract() {
    let mut s = started("2024-01-02 09:00", &[("服务年度起始", date("2024-01-01"))]);
    assert_eq!(window(&s, "年终评议"), Some(("2024-12-01 00:00".into(), "2025-01-01 00:00".into())));
    s.advance_to("2024-12-02 09:00").unwrap();
    s.act("社区党组织", "年终评议/组织评议", done("已组织居民代表")).unwrap();
    // 49 of 100 is below 50 %: the rating cannot keep the company.
    let r = s.act("居民代表会议", "年终评议/服务评议", rating(100, 49, "继续履行")).unwrap_err();
    assert_eq!(r.code(), "F013");
    assert_eq!(r.to_string(), "step `年终评议/服务评议`: R4.2 群众满意率达不到50%的,依法解除物业服务合同");
    s.act("居民代表会议", "年终评议/服务评议", rating(100, 49, "解除合同")).unwrap();
    // The forced path: the party organisation cannot approve keeping the company; nothing is
    // recorded, and the rejection (termination) is what is left.
    let before = s.history.len();
    let r = s.act("社区党组织", "年终评议/评议结果处理", approve()).unwrap_err();
    assert_eq!(r.code(), "F013");
    assert_eq!(r.to_string(), "step `年终评议/评议结果处理`: R4.2 群众满意率达不到50%的,依法解除物业服务合同");
    assert_eq!(s.history.len(), before, "a refusal records nothing");
    s.act("社区党组织", "年终评议/评议结果处理", reject("满意率49%,依法解除合同")).unwrap();
    assert_eq!(s.state.nodes["年终评议/评议结果处理"].outcome, Some(Outcome::Rejected));
    assert_eq!(s.status_of("年终评议/依法解除合同"), Some(NodeStatus::Open));
    // 30 days from 12-02 end on 2025-01-01, 元旦: rolled to the next working day, 01-02.
    assert_eq!(due(&s, "年终评议/依法解除合同").as_deref(), Some("2025-01-03 00:00"));
    s.act("街道办事处", "年终评议/考核征求街道意见", opinion("服务较差")).unwrap();
    s.act("社区党组织", "年终评议/考核征求社区意见", opinion("居民意见较大")).unwrap();
    s.advance_to("2024-12-30 09:00").unwrap();
    assert_eq!(
        timer_events(&s),
        vec![(
            Event::Reminded { node: "年终评议/依法解除合同".into(), due_at: at("2025-01-03 00:00") },
            "2024-12-29 00:00".into()
        )]
    );
    s.act("业主委员会", "年终评议/依法解除合同", done("已书面通知解除合同,办理交接")).unwrap();
    assert_eq!(s.state.nodes["年终评议/依法解除合同"].outcome, Some(Outcome::Done));
    assert_eq!(s.state.status, Status::Completed);
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r4_2_exactly_half_satisfied_keeps_the_company() {
    let mut s = started("2012-12-03 09:00", &[]);
    s.act("社区党组织", "年终评议/组织评议", done("已组织")).unwrap();
    s.act("业主委员会", "年终评议/服务评议", rating(100, 50, "继续履行")).unwrap();
    assert_eq!(s.status_of("年终评议/评议结果处理"), Some(NodeStatus::Open));
    let r = s.act("物业公司", "年终评议/评议结果处理", approve()).unwrap_err();
    assert_eq!(r.code(), "F006");
    // At exactly 50 % the party organisation may keep the company (R4.2's forced path does not apply).
    s.act("社区党组织", "年终评议/评议结果处理", approve()).unwrap();
    assert_eq!(s.state.nodes["年终评议/评议结果处理"].outcome, Some(Outcome::Approved));
    assert_eq!(s.status_of("年终评议/依法解除合同"), Some(NodeStatus::Skipped));
}

#[test]
fn r4_2_the_rating_is_held_within_the_year_end() {
    let mut s = started("2012-01-04 09:00", &[]);
    s.advance_to("2013-01-02 09:00").unwrap();
    let r = s.act("社区党组织", "年终评议/组织评议", done("补评")).unwrap_err();
    assert_eq!(r.code(), "F009");
    assert_eq!(r.to_string(), "the window of step `年终评议/组织评议` closed at 2013-01-01 00:00 +08:00");
}

#[test]
fn r4_1_entry_needs_the_party_organisation_consent() {
    let mut s = started("2012-01-04 09:00", &[("新进驻", Value::Bool(true))]);
    let r = s
        .act("物业公司", "进驻申请", form(&[("服务范围", text("")), ("收费标准", text("1.2元/平方米·月"))]))
        .unwrap_err();
    assert_eq!(r.to_string(), "step `进驻申请`: 须写明物业服务范围");
    s.act(
        "物业公司",
        "进驻申请",
        form(&[("服务范围", text("保洁、绿化、秩序维护")), ("收费标准", text("1.2元/平方米·月"))]),
    )
    .unwrap();
    // 15 working days from 01-04, across the 2012 Spring Festival (01-22 … 01-28 off, 01-21 and
    // 01-29 worked).
    assert_eq!(due(&s, "进驻同意").as_deref(), Some("2012-01-31 00:00"));
    s.advance_to("2012-01-10 10:00").unwrap();
    s.act("物业主管部门", "进驻同意", approve()).unwrap();
    assert_eq!(s.status_of("进驻同意"), Some(NodeStatus::Open), "会签: the party organisation must consent too");
    s.act("社区党组织", "进驻同意", reject("该公司在其他小区服务评议不合格")).unwrap();
    assert_eq!(s.state.nodes["进驻同意"].outcome, Some(Outcome::Rejected));
    assert_eq!(s.state.status, Status::Rejected);
    assert_eq!(s.history.last().map(|(e, _)| e.clone()), Some(Event::InstanceRejected { node: "进驻同意".into() }));
    let r = s.act("街道办事处", "合同报街道备案", file()).unwrap_err();
    assert_eq!(r.to_string(), "the instance is ended by a rejection; nothing more can be done on it");
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r4_1_entry_consented_then_the_contract_is_filed_and_rated_at_year_end() {
    let mut s = started("2012-01-04 09:00", &[("新进驻", Value::Bool(true))]);
    s.act("物业公司", "进驻申请", form(&[("服务范围", text("保洁、绿化")), ("收费标准", text("1元/平方米·月"))]))
        .unwrap();
    s.advance_to("2012-01-10 10:00").unwrap();
    s.act("社区党组织", "进驻同意", approve()).unwrap();
    s.act("物业主管部门", "进驻同意", approve()).unwrap();
    assert_eq!(s.state.nodes["进驻同意"].outcome, Some(Outcome::Approved));
    // Filings record the contract; they cannot veto it.
    let r = s.act("街道办事处", "合同报街道备案", reject("不同意")).unwrap_err();
    assert_eq!(r.code(), "F010");
    s.act("街道办事处", "合同报街道备案", file()).unwrap();
    s.act("社区党组织", "合同报社区备案", file()).unwrap();
    assert_eq!(s.state.nodes["合同报社区备案"].outcome, Some(Outcome::Filed));
    s.advance_to("2012-12-10 09:00").unwrap();
    s.act("社区党组织", "年终评议/组织评议", done("已组织")).unwrap();
    s.act("业主委员会", "年终评议/服务评议", rating(80, 70, "继续履行")).unwrap();
    s.act("社区党组织", "年终评议/评议结果处理", approve()).unwrap();
    s.act("街道办事处", "年终评议/考核征求街道意见", opinion("合格")).unwrap();
    s.act("社区党组织", "年终评议/考核征求社区意见", opinion("合格")).unwrap();
    assert_eq!(s.state.status, Status::Completed);
    assert_eq!(timer_events(&s), vec![]);
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r4_3_demolition_needs_consent_a_promotion_only_an_opinion() {
    let mut s = started("2012-01-04 09:00", &[("涉及拆迁改建", Value::Bool(true)), ("有提拔人选", Value::Bool(true))]);
    let works = || form(&[("事项", text("幸福路道路改建")), ("影响范围", text("3号楼至5号楼"))]);
    s.act("建设单位", "拆迁改建申请", works()).unwrap();
    // Consent can refuse: the request goes back to the builder.
    s.act("社区党组织", "拆迁改建同意", reject("未征求沿线居民意见")).unwrap();
    assert_eq!(s.status_of("拆迁改建申请"), Some(NodeStatus::Open));
    assert_eq!(s.state.nodes["拆迁改建申请"].round, 1);
    assert_eq!(s.status_of("拆迁改建同意"), Some(NodeStatus::Waiting));
    s.act("建设单位", "拆迁改建申请", works()).unwrap();
    s.act("社区党组织", "拆迁改建同意", approve()).unwrap();
    assert_eq!(s.state.nodes["拆迁改建同意"].outcome, Some(Outcome::Approved));

    // R4.3: an opinion cannot refuse; an unfavourable one is recorded and binds nothing.
    let r = s.act("社区党组织", "提拔征求意见", reject("不同意提拔")).unwrap_err();
    assert_eq!(r.code(), "F010");
    assert_eq!(
        r.to_string(),
        "`reject` does not apply to step `提拔征求意见`, a consultation step; it takes `give_opinion`, `withdraw`, `delegate`, `urge`"
    );
    s.act("社区党组织", "提拔征求意见", opinion("该同志群众评价一般,不同意提拔")).unwrap();
    assert_eq!(s.state.nodes["提拔征求意见"].outcome, Some(Outcome::Done));
    assert_eq!(s.state.nodes["提拔征求意见"].acts[0].text.as_deref(), Some("该同志群众评价一般,不同意提拔"));
    s.advance_to("2012-12-03 09:00").unwrap();
    s.act("社区党组织", "年终评议/组织评议", done("已组织")).unwrap();
    s.act("业主委员会", "年终评议/服务评议", rating(100, 80, "继续履行")).unwrap();
    s.act("社区党组织", "年终评议/评议结果处理", approve()).unwrap();
    s.act("街道办事处", "年终评议/考核征求街道意见", opinion("合格")).unwrap();
    s.act("社区党组织", "年终评议/考核征求社区意见", opinion("合格")).unwrap();
    assert_eq!(s.state.status, Status::Completed);
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r4_3_an_opinion_not_given_in_time_is_reported_to_the_promoting_department() {
    let mut s = started("2012-01-04 09:00", &[("有提拔人选", Value::Bool(true))]);
    // 5 working days from 01-04: 01-05 … 01-11.
    assert_eq!(due(&s, "提拔征求意见").as_deref(), Some("2012-01-12 00:00"));
    s.advance_to("2012-01-13 09:00").unwrap();
    let due_at = at("2012-01-12 00:00");
    assert_eq!(
        timer_events(&s),
        vec![
            (Event::Reminded { node: "提拔征求意见".into(), due_at }, "2012-01-11 00:00".into()),
            (Event::Overdue { node: "提拔征求意见".into(), due_at }, "2012-01-12 00:00".into()),
            (
                Event::Notified { node: "提拔征求意见".into(), role: "组织人事部门".into(), due_at },
                "2012-01-12 00:00".into()
            ),
        ]
    );
    assert_eq!(s.status_of("提拔征求意见"), Some(NodeStatus::Open), "a late opinion is still recorded");
}
