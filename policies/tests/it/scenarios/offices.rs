//! Offices, not just roles (R6.1) and residents' personal data (R6.2), on the bundled policies.

use civicflow_dsl::value::Value;
use civicflow_engine::core::personal::{self, Viewer, REDACTED};
use civicflow_engine::core::{Action, Actor, Event, NodeStatus, Refusal};
use civicflow_engine::sim::{date, form, int, text, Simulation};

use super::*;

fn someone(principal: &str, office: &str, role: &str) -> Actor {
    Actor { principal: principal.into(), office: office.into(), role: role.into() }
}

fn demand_form() -> Action {
    form(&[
        ("诉求人", text("张三")),
        ("联系电话", text("13800000000")),
        ("诉求内容", text("小区路灯损坏")),
        ("受理日期", date("2012-05-07")),
    ])
}

fn demand() -> Simulation {
    let mut s = sim("residents_demand", "2012-05-07 09:00");
    s.start(&[("社区名称", text("舜耕社区"))]).unwrap();
    s
}

#[test]
fn r6_1_another_community_with_the_same_role_is_refused_and_nothing_is_recorded() {
    let mut s = demand();
    // The binding is recorded at start, from the parameter.
    assert!(s
        .history
        .iter()
        .any(|(e, _)| *e == Event::Bound { role: "社区居委会".into(), office: "舜耕社区".into(), node: None }));
    assert_eq!(s.state.bindings["社区居委会"], "舜耕社区");
    let before = s.history.len();
    let r = s.act_as(someone("燕山-王", "燕山社区", "社区居委会"), "诉求受理", demand_form()).unwrap_err();
    assert_eq!(
        r,
        Refusal::OfficeNotBound {
            node: "诉求受理".into(),
            role: "社区居委会".into(),
            bound: "舜耕社区".into(),
            office: "燕山社区".into()
        }
    );
    assert_eq!(r.code(), "F035");
    assert_eq!(
        r.to_string(),
        "role `社区居委会` on step `诉求受理` is bound to `舜耕社区` for this instance; `燕山社区` holds the role but may not act on it"
    );
    assert_eq!(s.history.len(), before, "a refusal records nothing");
    // The bound community acts.
    s.act_as(someone("舜耕-李", "舜耕社区", "社区居委会"), "诉求受理", demand_form()).unwrap();
    assert_eq!(s.status_of("诉求受理"), Some(NodeStatus::Done));
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r6_1_the_first_receiver_is_bound_by_the_form_that_names_it() {
    let mut s = demand();
    s.act("社区居委会", "诉求受理", demand_form()).unwrap();
    s.advance_to("2012-05-08 10:00").unwrap();
    s.act("社区居委会", "社区研判", reject("需市政部门维修")).unwrap();
    // Before 民生办 names the department, nobody may act as 首办部门.
    let before = s.history.len();
    let r = s.act_as(someone("市政-赵", "市政公用局", "首办部门"), "首办受理", done("受理")).unwrap_err();
    assert_eq!(r.code(), "F036");
    assert_eq!(
        r.to_string(),
        "role `首办部门` on step `首办受理` is bound by field `首办部门名称` of step `民生办分流`, which has not been recorded yet; no office may act in it until then"
    );
    assert_eq!(s.history.len(), before);
    s.act("民生办", "民生办分流", form(&[("首办部门名称", text("市政公用局")), ("督办人", text("李四"))])).unwrap();
    assert_eq!(s.state.bindings["首办部门"], "市政公用局");
    assert_eq!(s.state.bindings["部门主要领导"], "市政公用局");
    let before = s.history.len();
    let r = s.act_as(someone("住建-钱", "住建局", "首办部门"), "首办受理", done("受理")).unwrap_err();
    assert_eq!(r.code(), "F035");
    assert!(r.to_string().contains("is bound to `市政公用局`"), "{r}");
    assert_eq!(s.history.len(), before);
    s.act_as(someone("市政-赵", "市政公用局", "首办部门"), "首办受理", done("受理")).unwrap();
    assert_eq!(s.status_of("首办受理"), Some(NodeStatus::Done));
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r6_1_each_copy_of_a_fan_out_is_bound_to_its_community() {
    let mut s = sim("reform_pilot", "2008-01-02 09:00");
    s.start(&[]).unwrap();
    s.act("街工委", "调查阶段/成立领导小组", done("成立领导小组,另行文")).unwrap();
    assert_eq!(s.state.nodes["调查阶段/社区调查[0]"].bound["社区居委会"], "第一社区");
    assert_eq!(s.state.nodes["调查阶段/社区调查[1]"].bound["社区居委会"], "第二社区");
    let survey = |c: &str| {
        form(&[("社区名称", text(c)), ("居民户数", int(1800)), ("八大员人数", int(8)), ("情况说明", text("职责交叉"))])
    };
    let before = s.history.len();
    let r =
        s.act_as(someone("二-王", "第二社区", "社区居委会"), "调查阶段/社区调查[0]", survey("第一社区")).unwrap_err();
    assert_eq!(
        r,
        Refusal::OfficeNotBound {
            node: "调查阶段/社区调查[0]".into(),
            role: "社区居委会".into(),
            bound: "第一社区".into(),
            office: "第二社区".into()
        }
    );
    assert_eq!(s.history.len(), before);
    s.act_as(someone("二-王", "第二社区", "社区居委会"), "调查阶段/社区调查[1]", survey("第二社区")).unwrap();
    s.act_as(someone("一-李", "第一社区", "社区居委会"), "调查阶段/社区调查[0]", survey("第一社区")).unwrap();
    // A role without a binding (the street's task force) still acts on every copy.
    s.act("试点专班", "调查阶段/社区调查[2]", survey("第三社区")).unwrap();
    assert_eq!(s.status_of("调查阶段/社区调查[0]"), Some(NodeStatus::Done));
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r6_1_delegation_stays_within_the_bound_office() {
    let mut s = sim("community_access", "2012-05-07 09:00");
    s.start(&[("申请部门", text("区人社局")), ("事项名称", text("医保参保登记")), ("社区名称", text("舜耕社区"))])
        .unwrap();
    let head = someone("人社-孙", "区人社局", "职能部门");
    s.act_as(head, "准入申请", Action::Delegate { to: "王五".into() }).unwrap();
    let request = form(&[
        ("协助内容", text("医保参保登记")),
        ("联系人", record(&[("姓名", text("王五")), ("电话", text("0531-12345678"))])),
        ("配备人员数", int(2)),
        ("工作经费", int(20000)),
        ("工作条件", text("办公桌椅")),
        ("开始协助日期", date("2012-06-01")),
    ]);
    let before = s.history.len();
    // The delegate in another department holds no role there: the binding still applies.
    let r = s.act_as(someone("王五", "区教育局", "职员"), "准入申请", request.clone()).unwrap_err();
    assert_eq!(r.code(), "F035");
    assert_eq!(s.history.len(), before);
    s.act_as(someone("王五", "区人社局", "职员"), "准入申请", request).unwrap();
    assert_eq!(s.status_of("准入申请"), Some(NodeStatus::Done));
}

#[test]
fn r6_2_personal_fields_are_redacted_for_an_unbound_office_and_shown_to_bound_and_oversight() {
    let mut s = demand();
    s.act("社区居委会", "诉求受理", demand_form()).unwrap();
    let p = &s.program;
    assert!(personal::has_personal(p));
    let none: Vec<String> = vec![];
    let neighbour = Viewer { office: "燕山社区", roles: &["社区居委会".to_string()] };
    let own = Viewer { office: "舜耕社区", roles: &none };
    let oversight_roles = vec!["纪委".to_string()];
    let oversight = Viewer { office: "街道纪工委", roles: &oversight_roles };
    assert!(!personal::sees_personal(p, &s.state, neighbour));
    assert!(personal::sees_personal(p, &s.state, own));
    assert!(personal::sees_personal(p, &s.state, oversight));

    let mut seen = s.state.clone();
    personal::redact_state(p, &mut seen);
    let f = seen.nodes["诉求受理"].form.as_ref().unwrap();
    assert_eq!(f["诉求人"], Value::Text(REDACTED.into()));
    assert_eq!(f["联系电话"], Value::Text(REDACTED.into()));
    assert_eq!(f["诉求内容"], text("小区路灯损坏"), "what is not personal stays");
    let (mut recorded, _) = s.history.iter().find(|(e, _)| matches!(e, Event::FormRecorded { .. })).cloned().unwrap();
    personal::redact_event(p, &mut recorded);
    let Event::FormRecorded { data, .. } = recorded else { unreachable!() };
    assert_eq!(data["联系电话"], Value::Text("[个人信息]".into()));
    assert_eq!(data["受理日期"], date("2012-05-07"));
}
