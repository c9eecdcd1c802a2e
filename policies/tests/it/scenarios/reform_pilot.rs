//! reform_pilot.cf: 优化社区"两员"配置 改革试点 (R1.1–R1.6).
//!
//! The procedure is driven in four stages, each acting at a fixed offset in days from the start
//! date, so the same drive runs the 2008 calendar and any other year (R1.6).

use chrono::{Duration, NaiveDate};
use civicflow_dsl::value::Value;
use civicflow_engine::core::{Action, Event, NodeStatus, Outcome, Refusal, Status};
use civicflow_engine::sim::{form, int, text, Simulation};

use super::*;

const COMMUNITIES: [&str; 10] = [
    "第一社区",
    "第二社区",
    "第三社区",
    "第四社区",
    "第五社区",
    "第六社区",
    "第七社区",
    "第八社区",
    "第九社区",
    "第十社区",
];

/// Local time `offset` days after `start`, at `hm`.
fn on(start: NaiveDate, offset: i64, hm: &str) -> String {
    format!("{} {hm}", start + Duration::days(offset))
}

/// Starts the pilot on `start` at 09:00; `None` leaves 起始日 at its default (2008-01-02).
fn begin(start: Option<&str>) -> (Simulation, NaiveDate) {
    let day = NaiveDate::parse_from_str(start.unwrap_or("2008-01-02"), "%Y-%m-%d").unwrap();
    let mut s = sim("reform_pilot", &on(day, 0, "09:00"));
    match start {
        Some(d) => s.start(&[("起始日", civicflow_engine::sim::date(d))]).unwrap(),
        None => s.start(&[]).unwrap(),
    };
    (s, day)
}

fn survey_form(community: &str) -> Action {
    form(&[
        ("社区名称", text(community)),
        ("居民户数", int(1800)),
        ("八大员人数", int(8)),
        ("情况说明", text("“八大员”分属不同部门,职责交叉")),
    ])
}

fn plan_form(covered: i64) -> Action {
    form(&[("方案名称", text("改革试点实施方案")), ("调查覆盖社区数", int(covered))])
}

/// 调查阶段 up to the plan's consultation (offsets 0 … 16).
fn survey_until_consulted(s: &mut Simulation, d: NaiveDate) {
    s.act("街工委", "调查阶段/成立领导小组", done("成立领导小组,另行文")).unwrap();
    s.advance_to(&on(d, 7, "10:00")).unwrap();
    for (i, c) in COMMUNITIES.iter().enumerate() {
        let role = if i % 2 == 0 { "试点专班" } else { "社区居委会" };
        s.act(role, &format!("调查阶段/社区调查[{i}]"), survey_form(c)).unwrap();
    }
    s.advance_to(&on(d, 14, "10:00")).unwrap();
    s.act("试点专班", "调查阶段/拟定实施方案", plan_form(10)).unwrap();
    s.advance_to(&on(d, 16, "10:00")).unwrap();
    for i in 0..10 {
        s.act("社区居委会", &format!("调查阶段/征求意见[{i}]"), opinion("同意")).unwrap();
    }
}

/// 调查阶段: the plan approved at offset 28.
fn survey(s: &mut Simulation, d: NaiveDate) {
    survey_until_consulted(s, d);
    s.advance_to(&on(d, 28, "10:00")).unwrap();
    s.act("领导小组", "调查阶段/试点方案审批", approve()).unwrap();
}

const PLANS: [(&str, &str); 5] = [
    ("准备阶段/拟订职能配置方案", "准备阶段/审批职能配置方案"),
    ("准备阶段/拟订招聘方案", "准备阶段/审批招聘方案"),
    ("准备阶段/拟订运行机制方案", "准备阶段/审批运行机制方案"),
    ("准备阶段/拟订党组织配置方案", "准备阶段/审批党组织配置方案"),
    ("准备阶段/拟订居委会运行方案", "准备阶段/审批居委会运行方案"),
];

/// 准备阶段 (offsets 31 … 36).
fn prepare(s: &mut Simulation, d: NaiveDate) {
    s.advance_to(&on(d, 31, "10:00")).unwrap();
    s.act("办事处", "准备阶段/成立协管中心", done("已成立")).unwrap();
    s.act("办事处", "准备阶段/成立服务中心", done("已成立")).unwrap();
    s.advance_to(&on(d, 33, "10:00")).unwrap();
    s.act("领导小组", "准备阶段/动员会", form(&[("参会人数", int(120)), ("会议纪要", text("动员部署改革试点"))]))
        .unwrap();
    s.advance_to(&on(d, 36, "10:00")).unwrap();
    for (draft, approval) in PLANS {
        s.act("试点专班", draft, done("方案已拟订")).unwrap();
        s.act("领导小组", approval, approve()).unwrap();
    }
    s.act("试点专班", "准备阶段/专班培训", done("培训完成")).unwrap();
}

/// 具体实施阶段 (offsets 70, 80, 88).
fn implement(s: &mut Simulation, d: NaiveDate) {
    s.advance_to(&on(d, 70, "10:00")).unwrap();
    s.act("社区协管中心", "具体实施阶段/选聘两员", form(&[("选聘协管员人数", int(30)), ("选聘服务员人数", int(20))]))
        .unwrap();
    s.advance_to(&on(d, 80, "10:00")).unwrap();
    s.act("社区服务中心", "具体实施阶段/两员培训", done("岗前培训50人")).unwrap();
    s.advance_to(&on(d, 88, "10:00")).unwrap();
    s.act("社区协管中心", "具体实施阶段/加强管理建立党组织/掌握试用情况", done("试用情况良好")).unwrap();
    s.act("社区服务中心", "具体实施阶段/加强管理建立党组织/建立规章制度", done("制度已建立")).unwrap();
    s.act("街工委", "具体实施阶段/加强管理建立党组织/组建党组织", done("组建党支部2个")).unwrap();
}

/// 完善提高阶段 (offsets 121, 125).
fn improve(s: &mut Simulation, d: NaiveDate) {
    s.advance_to(&on(d, 121, "10:00")).unwrap();
    s.act("试点专班", "完善提高阶段/全面总结", done("总结完成")).unwrap();
    s.act(
        "试点专班",
        "完善提高阶段/形成综合报告",
        form(&[
            ("工作情况", text("10个社区完成试点")),
            ("成功经验", text("权随责走")),
            ("问题与建议", text("经费保障")),
        ]),
    )
    .unwrap();
    s.advance_to(&on(d, 125, "10:00")).unwrap();
    s.act("领导小组", "完善提高阶段/综合报告签收", file()).unwrap();
}

fn whole(start: Option<&str>) -> Simulation {
    let (mut s, d) = begin(start);
    survey(&mut s, d);
    prepare(&mut s, d);
    implement(&mut s, d);
    improve(&mut s, d);
    s
}

fn windows(s: &Simulation) -> Vec<(String, String, String)> {
    s.state.nodes.iter().filter_map(|(k, n)| n.window.map(|(a, b)| (k.clone(), local(a), local(b)))).collect()
}

#[test]
fn r1_1_happy_path_2008_from_the_default_start_to_the_report() {
    let s = whole(None);
    assert_eq!(s.state.status, Status::Completed);
    // The 2008 dates come from the default of 起始日.
    assert_eq!(s.state.params["起始日"], civicflow_engine::sim::date("2008-01-02"));
    assert_eq!(s.state.values["社区数"], Value::int(10));
    // R1.1, R1.2: every window as the document dates it (ends are the next day's 00:00).
    let w = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        windows(&s),
        [
            w("具体实施阶段", "2008-03-10 00:00", "2008-05-01 00:00"),
            w("具体实施阶段/两员培训", "2008-03-21 00:00", "2008-03-29 00:00"),
            w("具体实施阶段/加强管理建立党组织", "2008-03-29 00:00", "2008-05-01 00:00"),
            w("具体实施阶段/选聘两员", "2008-03-11 00:00", "2008-03-21 00:00"),
            w("准备阶段", "2008-02-02 00:00", "2008-03-10 00:00"),
            w("完善提高阶段", "2008-05-01 00:00", "2008-05-31 00:00"),
            w("调查阶段", "2008-01-02 00:00", "2008-02-02 00:00"),
        ]
    );
    // R1.4: one survey per community, each of them done.
    let surveys: Vec<(String, String)> = s
        .state
        .nodes
        .iter()
        .filter(|(k, _)| k.starts_with("调查阶段/社区调查["))
        .map(|(k, n)| (k.clone(), n.element.as_ref().map(ToString::to_string).unwrap_or_default()))
        .collect();
    assert_eq!(surveys.len(), 10);
    assert_eq!(surveys[0], ("调查阶段/社区调查[0]".to_string(), "第一社区".to_string()));
    assert_eq!(surveys[9], ("调查阶段/社区调查[9]".to_string(), "第十社区".to_string()));
    // Phases complete in order, each when its last step is done.
    let closed = |k: &str| s.state.nodes[k].closed_at.map(local);
    assert_eq!(closed("调查阶段").as_deref(), Some("2008-01-30 10:00"));
    assert_eq!(closed("准备阶段").as_deref(), Some("2008-02-07 10:00"));
    assert_eq!(closed("具体实施阶段").as_deref(), Some("2008-03-30 10:00"));
    assert_eq!(closed("完善提高阶段").as_deref(), Some("2008-05-06 10:00"));
    // Deadlines: 试点方案审批 by 02-01, the report's sign-off by 05-30.
    assert_eq!(due(&s, "调查阶段/试点方案审批").as_deref(), Some("2008-02-02 00:00"));
    assert_eq!(due(&s, "完善提高阶段/综合报告签收").as_deref(), Some("2008-05-31 00:00"));
    // The centres' 10 working days count from 02-02, when 准备阶段 may be acted on.
    assert_eq!(due(&s, "准备阶段/成立协管中心").as_deref(), Some("2008-02-22 00:00"));
    assert_eq!(timer_events(&s), vec![], "nothing was late");
    // R1.5: the comprehensive report is signed off by the leading group.
    assert_eq!(s.state.nodes["完善提高阶段/综合报告签收"].outcome, Some(Outcome::Filed));
    assert_eq!(
        s.history.last().map(|(e, t)| (e.clone(), local(*t))),
        Some((Event::InstanceCompleted, "2008-05-06 10:00".into()))
    );
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r1_6_another_start_date_shifts_every_window_by_the_same_offset() {
    let a = whole(None);
    let b = whole(Some("2021-01-04"));
    assert_eq!(b.state.status, Status::Completed);
    let shift = Duration::days(
        (NaiveDate::from_ymd_opt(2021, 1, 4).unwrap() - NaiveDate::from_ymd_opt(2008, 1, 2).unwrap()).num_days(),
    );
    assert_eq!(shift, Duration::days(4751));
    let wa: Vec<_> = a.state.nodes.iter().filter_map(|(k, n)| n.window.map(|w| (k.clone(), w))).collect();
    let wb: Vec<_> = b.state.nodes.iter().filter_map(|(k, n)| n.window.map(|w| (k.clone(), w))).collect();
    assert_eq!(wa.len(), 7);
    assert_eq!(wb, wa.iter().map(|(k, (x, y))| (k.clone(), (*x + shift, *y + shift))).collect::<Vec<_>>());
    // Dated deadlines move with them.
    for k in ["调查阶段/试点方案审批", "完善提高阶段/综合报告签收"] {
        assert_eq!(b.state.nodes[k].due_at, a.state.nodes[k].due_at.map(|t| t + shift), "{k}");
    }
    // 2021 is not a leap year: 起始日 + 69 days is 03-14, not 03-11.
    assert_eq!(window(&b, "具体实施阶段/选聘两员"), Some(("2021-03-14 00:00".into(), "2021-03-24 00:00".into())));
    assert_eq!(window(&b, "完善提高阶段"), Some(("2021-05-04 00:00".into(), "2021-06-03 00:00".into())));
    assert_eq!(b.replayed(), b.state);
}

#[test]
fn r1_1_the_survey_phase_closes_after_02_01() {
    let (mut s, d) = begin(None);
    survey_until_consulted(&mut s, d);
    let before = s.history.len();
    s.advance_to("2008-02-02 09:00").unwrap();
    let due_at = at("2008-02-02 00:00");
    assert_eq!(
        s.history[before..].iter().map(|(e, t)| (e.clone(), local(*t))).collect::<Vec<_>>(),
        vec![
            // Two working days before the deadline: 01-31 and 02-01 left.
            (Event::Reminded { node: "调查阶段/试点方案审批".into(), due_at }, "2008-01-31 00:00".into()),
            (Event::Overdue { node: "调查阶段/试点方案审批".into(), due_at }, "2008-02-02 00:00".into()),
            (
                Event::Notified { node: "调查阶段/试点方案审批".into(), role: "街工委".into(), due_at },
                "2008-02-02 00:00".into()
            ),
        ]
    );
    let r = s.act("领导小组", "调查阶段/试点方案审批", approve()).unwrap_err();
    assert_eq!(r.code(), "F009");
    assert_eq!(
        r,
        Refusal::WindowClosed {
            node: "调查阶段/试点方案审批".into(), closed: "2008-02-02 00:00 +08:00".into()
        }
    );
    assert_eq!(r.to_string(), "the window of step `调查阶段/试点方案审批` closed at 2008-02-02 00:00 +08:00");
}

#[test]
fn r1_1_preparation_cannot_be_acted_on_before_02_02() {
    let (mut s, d) = begin(None);
    survey(&mut s, d);
    // The survey phase ended on 01-30: the next phase is open, its window not yet.
    assert_eq!(s.status_of("准备阶段/成立协管中心"), Some(NodeStatus::Open));
    let r = s.act("办事处", "准备阶段/成立协管中心", done("已成立")).unwrap_err();
    assert_eq!(r.code(), "F008");
    assert_eq!(
        r,
        Refusal::WindowNotOpen {
            node: "准备阶段/成立协管中心".into(), opens: "2008-02-02 00:00 +08:00".into()
        }
    );
    assert_eq!(
        r.to_string(),
        "step `准备阶段/成立协管中心` cannot be acted on before 2008-02-02 00:00 +08:00 (its window)"
    );
    s.advance_to("2008-02-02 00:00").unwrap();
    s.act("办事处", "准备阶段/成立协管中心", done("已成立")).unwrap();
    // After 03-09 the phase is closed.
    s.advance_to("2008-03-10 08:00").unwrap();
    let r = s.act("办事处", "准备阶段/成立服务中心", done("已成立")).unwrap_err();
    assert_eq!(r.to_string(), "the window of step `准备阶段/成立服务中心` closed at 2008-03-10 00:00 +08:00");
}

#[test]
fn r1_2_the_three_implementation_steps_keep_their_own_windows() {
    let (mut s, d) = begin(None);
    survey(&mut s, d);
    prepare(&mut s, d);
    // 具体实施阶段 is open from 03-10, but 选聘 only from 03-11.
    s.advance_to("2008-03-10 10:00").unwrap();
    let hire = || form(&[("选聘协管员人数", int(30)), ("选聘服务员人数", int(20))]);
    let r = s.act("社区协管中心", "具体实施阶段/选聘两员", hire()).unwrap_err();
    assert_eq!(
        r,
        Refusal::WindowNotOpen {
            node: "具体实施阶段/选聘两员".into(), opens: "2008-03-11 00:00 +08:00".into()
        }
    );
    s.advance_to("2008-03-20 23:59").unwrap();
    s.act("社区服务中心", "具体实施阶段/选聘两员", hire()).unwrap();
    let r = s.act("社区协管中心", "具体实施阶段/两员培训", done("培训")).unwrap_err();
    assert_eq!(
        r,
        Refusal::WindowNotOpen {
            node: "具体实施阶段/两员培训".into(), opens: "2008-03-21 00:00 +08:00".into()
        }
    );
    // Training left undone past 03-28: its window closes and the step is overdue, both recorded
    // at that instant.
    let before = s.history.len();
    s.advance_to("2008-03-29 09:00").unwrap();
    let closes = at("2008-03-29 00:00");
    assert_eq!(
        s.history[before..].to_vec(),
        vec![
            (Event::WindowClosed { node: "具体实施阶段/两员培训".into(), at: closes }, closes),
            (Event::Overdue { node: "具体实施阶段/两员培训".into(), due_at: closes }, closes),
        ]
    );
    assert!(s.state.nodes["具体实施阶段/两员培训"].overdue);
    let r = s.act("社区协管中心", "具体实施阶段/两员培训", done("培训")).unwrap_err();
    assert_eq!(
        r,
        Refusal::WindowClosed {
            node: "具体实施阶段/两员培训".into(), closed: "2008-03-29 00:00 +08:00".into()
        }
    );
    // … and 加强管理、建立党组织 waits for it.
    let r = s.act("街工委", "具体实施阶段/加强管理建立党组织/组建党组织", done("组建")).unwrap_err();
    assert_eq!(r.code(), "F005");
}

#[test]
fn r1_2_strengthening_management_opens_on_03_29() {
    let (mut s, d) = begin(None);
    survey(&mut s, d);
    prepare(&mut s, d);
    s.advance_to("2008-03-12 10:00").unwrap();
    s.act("社区协管中心", "具体实施阶段/选聘两员", form(&[("选聘协管员人数", int(30)), ("选聘服务员人数", int(20))]))
        .unwrap();
    s.advance_to("2008-03-21 10:00").unwrap();
    s.act("社区协管中心", "具体实施阶段/两员培训", done("培训")).unwrap();
    let r = s.act("街工委", "具体实施阶段/加强管理建立党组织/组建党组织", done("组建")).unwrap_err();
    assert_eq!(
        r,
        Refusal::WindowNotOpen {
            node: "具体实施阶段/加强管理建立党组织/组建党组织".into(),
            opens: "2008-03-29 00:00 +08:00".into()
        }
    );
    s.advance_to("2008-03-29 00:00").unwrap();
    s.act("街工委", "具体实施阶段/加强管理建立党组织/组建党组织", done("组建")).unwrap();
}

#[test]
fn r1_3_the_plans_are_approved_by_the_leading_group_and_recruitment_waits_for_its_plan() {
    let (mut s, d) = begin(None);
    survey(&mut s, d);
    s.advance_to("2008-02-02 10:00").unwrap();
    s.act("办事处", "准备阶段/成立协管中心", done("已成立")).unwrap();
    // The mobilisation meeting waits for both centres (a join).
    assert_eq!(s.status_of("准备阶段/动员会"), Some(NodeStatus::Waiting));
    s.act("办事处", "准备阶段/成立服务中心", done("已成立")).unwrap();
    let r = s.act("领导小组", "准备阶段/动员会", form(&[("参会人数", int(0)), ("会议纪要", text("无"))])).unwrap_err();
    assert_eq!(r.to_string(), "step `准备阶段/动员会`: 动员会须有参会人员");
    s.act("领导小组", "准备阶段/动员会", form(&[("参会人数", int(120)), ("会议纪要", text("动员"))])).unwrap();
    let r = s.act("试点专班", "准备阶段/审批招聘方案", approve()).unwrap_err();
    assert_eq!(r.code(), "F006");
    s.act("试点专班", "准备阶段/拟订招聘方案", done("招聘方案初稿")).unwrap();
    s.act("领导小组", "准备阶段/审批招聘方案", reject("招聘条件不明确")).unwrap();
    assert_eq!(s.status_of("准备阶段/拟订招聘方案"), Some(NodeStatus::Open));
    assert_eq!(s.state.nodes["准备阶段/拟订招聘方案"].round, 1);
    s.act("试点专班", "准备阶段/拟订招聘方案", done("招聘方案修改稿")).unwrap();
    s.act("领导小组", "准备阶段/审批招聘方案", approve()).unwrap();
    assert_eq!(s.state.nodes["准备阶段/审批招聘方案"].outcome, Some(Outcome::Approved));
    for (draft, approval) in PLANS.iter().filter(|(x, _)| !x.ends_with("招聘方案")) {
        s.act("试点专班", draft, done("方案已拟订")).unwrap();
        s.act("领导小组", approval, approve()).unwrap();
    }
    assert_eq!(s.status_of("准备阶段"), Some(NodeStatus::Open), "the working team's training is still due");
    s.act("试点专班", "准备阶段/专班培训", done("培训完成")).unwrap();
    assert_eq!(s.status_of("准备阶段"), Some(NodeStatus::Done));
    assert_eq!(s.status_of("具体实施阶段/选聘两员"), Some(NodeStatus::Open));
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r1_4_every_community_is_surveyed_before_the_plan() {
    let (mut s, d) = begin(None);
    s.act("办事处", "调查阶段/成立领导小组", done("成立")).unwrap();
    let copies: Vec<&String> = s.state.nodes.keys().filter(|k| k.starts_with("调查阶段/社区调查[")).collect();
    assert_eq!(copies.len(), 10);
    // 10 working days from 01-02: 01-03 … 01-16.
    assert_eq!(due(&s, "调查阶段/社区调查[0]").as_deref(), Some("2008-01-17 00:00"));
    let r = s.act("试点专班", "调查阶段/社区调查[3]", survey_form("第一社区")).unwrap_err();
    assert_eq!(r.to_string(), "step `调查阶段/社区调查[3]`: 调查表须填写本次调查的社区");
    let r = s.act("试点专班", "调查阶段/社区调查", survey_form("第一社区")).unwrap_err();
    assert_eq!(
        r.to_string(),
        "step `调查阶段/社区调查` is a group of copies (act on one of them), not open for action"
    );
    for (i, c) in COMMUNITIES.iter().enumerate().take(9) {
        s.act("试点专班", &format!("调查阶段/社区调查[{i}]"), survey_form(c)).unwrap();
    }
    assert_eq!(s.status_of("调查阶段/拟定实施方案"), Some(NodeStatus::Waiting), "one community is not surveyed");
    // The tenth survey lapses: the leading group is told when it does.
    s.advance_to(&on(d, 16, "09:00")).unwrap();
    let due_at = at("2008-01-17 00:00");
    assert_eq!(
        timer_events(&s),
        vec![
            (Event::Reminded { node: "调查阶段/社区调查[9]".into(), due_at }, "2008-01-15 00:00".into()),
            (Event::Overdue { node: "调查阶段/社区调查[9]".into(), due_at }, "2008-01-17 00:00".into()),
            (
                Event::Notified { node: "调查阶段/社区调查[9]".into(), role: "领导小组".into(), due_at },
                "2008-01-17 00:00".into()
            ),
        ]
    );
    s.act("社区居委会", "调查阶段/社区调查[9]", survey_form("第十社区")).unwrap();
    assert_eq!(s.status_of("调查阶段/社区调查"), Some(NodeStatus::Done));
    let r = s.act("试点专班", "调查阶段/拟定实施方案", plan_form(9)).unwrap_err();
    assert_eq!(r.to_string(), "step `调查阶段/拟定实施方案`: R1.4 方案须建立在全部社区调查的基础上");
    s.act("试点专班", "调查阶段/拟定实施方案", plan_form(10)).unwrap();
    for i in 0..10 {
        s.act("社区居委会", &format!("调查阶段/征求意见[{i}]"), opinion("同意")).unwrap();
    }
    // R1.4: the pilot plan needs the leading group's approval; a rejection sends it back to the
    // draft, and the communities are consulted again.
    s.act("领导小组", "调查阶段/试点方案审批", reject("未体现社区差异")).unwrap();
    assert_eq!(s.status_of("调查阶段/拟定实施方案"), Some(NodeStatus::Open));
    assert_eq!(s.status_of("调查阶段/征求意见"), Some(NodeStatus::Waiting));
    assert!(!s.state.nodes.contains_key("调查阶段/征求意见[0]"), "the consultation copies are made again");
    s.act("试点专班", "调查阶段/拟定实施方案", plan_form(10)).unwrap();
    for i in 0..10 {
        s.act("社区居委会", &format!("调查阶段/征求意见[{i}]"), opinion("同意修改稿")).unwrap();
    }
    s.act("领导小组", "调查阶段/试点方案审批", approve()).unwrap();
    assert_eq!(s.status_of("调查阶段"), Some(NodeStatus::Done));
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r1_5_the_report_is_signed_off_and_cannot_be_vetoed() {
    let (mut s, d) = begin(None);
    survey(&mut s, d);
    prepare(&mut s, d);
    implement(&mut s, d);
    s.advance_to("2008-05-05 10:00").unwrap();
    s.act("试点专班", "完善提高阶段/全面总结", done("总结")).unwrap();
    let r = s.act("试点专班", "完善提高阶段/形成综合报告", done("报告")).unwrap_err();
    assert_eq!(
        r.to_string(),
        "step `完善提高阶段/形成综合报告`, field `工作情况, 成功经验, 问题与建议`: submit the form first"
    );
    s.act(
        "试点专班",
        "完善提高阶段/形成综合报告",
        form(&[("工作情况", text("完成")), ("成功经验", text("经验")), ("问题与建议", text("建议"))]),
    )
    .unwrap();
    let r = s.act("领导小组", "完善提高阶段/综合报告签收", reject("不同意")).unwrap_err();
    assert_eq!(r.code(), "F010");
    // Not signed by 05-30: a reminder 3 days before, then overdue and 街工委 told.
    s.advance_to("2008-05-31 09:00").unwrap();
    let due_at = at("2008-05-31 00:00");
    assert_eq!(
        timer_events(&s),
        vec![
            (Event::Reminded { node: "完善提高阶段/综合报告签收".into(), due_at }, "2008-05-28 00:00".into()),
            (Event::Overdue { node: "完善提高阶段/综合报告签收".into(), due_at }, "2008-05-31 00:00".into()),
            (
                Event::Notified {
                    node: "完善提高阶段/综合报告签收".into(), role: "街工委".into(), due_at
                },
                "2008-05-31 00:00".into()
            ),
        ]
    );
    let r = s.act("领导小组", "完善提高阶段/综合报告签收", file()).unwrap_err();
    assert_eq!(r.to_string(), "the window of step `完善提高阶段/综合报告签收` closed at 2008-05-31 00:00 +08:00");
}
