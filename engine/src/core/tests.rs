//! decide/apply on small policies, each test naming the DOMAIN.md rule it checks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use chrono::{DateTime, Utc};

use super::*;
use crate::sim::{form, int, Simulation};

fn sim(src: &str, now: &str) -> Simulation {
    Simulation::new(src, now).unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn approve() -> Action {
    Action::Approve { comment: None }
}

fn reject(r: &str) -> Action {
    Action::Reject { reason: r.into() }
}

const WINDOWED: &str = r#"
policy pilot {
  role 领导小组
  phase 具体实施阶段 {
    window 2008-03-10 .. 2008-04-30
    step 选聘: task {
      by 领导小组
      window 2008-03-11 .. 2008-03-20
    }
  }
}"#;

#[test]
fn r1_1_acting_outside_the_window_is_refused() {
    let mut s = sim(WINDOWED, "2008-03-10 09:00");
    s.start(&[]).unwrap();
    let early = s.act("领导小组", "具体实施阶段/选聘", Action::Complete { report: "done".into() }).unwrap_err();
    assert_eq!(
        early,
        Refusal::WindowNotOpen { node: "具体实施阶段/选聘".into(), opens: "2008-03-11 00:00 +08:00".into() }
    );
    assert_eq!(
        early.to_string(),
        "step `具体实施阶段/选聘` cannot be acted on before 2008-03-11 00:00 +08:00 (its window)"
    );
    s.advance_to("2008-03-21 08:00").unwrap();
    // The window closed at the end of 03-20: the closing is recorded when it happens.
    assert!(s
        .history
        .iter()
        .any(|(e, at)| matches!(e, Event::WindowClosed { .. }) && *at == utc("2008-03-20T16:00:00Z")));
    let late = s.act("领导小组", "具体实施阶段/选聘", Action::Complete { report: "done".into() }).unwrap_err();
    assert_eq!(
        late,
        Refusal::WindowClosed { node: "具体实施阶段/选聘".into(), closed: "2008-03-21 00:00 +08:00".into() }
    );
}

#[test]
fn r1_1_acting_inside_the_window_completes_the_phase() {
    let mut s = sim(WINDOWED, "2008-03-15 10:00");
    s.start(&[]).unwrap();
    s.act("领导小组", "具体实施阶段/选聘", Action::Complete { report: "聘用10人".into() }).unwrap();
    assert_eq!(s.status_of("具体实施阶段"), Some(NodeStatus::Done));
    assert_eq!(s.state.status, Status::Completed);
    assert_eq!(s.replayed(), s.state);
}

const VOTE: &str = r#"
policy vote {
  role 社区党组织
  param 党员人数: int
  step 党员大会: vote {
    by 社区党组织
    eligible 党员人数
    seats 2
    quorum present > 4/5 * eligible
    slate candidates >= ceil(seats * 6/5)
    elect votes > 1/2 * cast
  }
}"#;

fn counts(present: u64, cast: u64, invalid: u64, tallies: &[(&str, u64)]) -> Action {
    Action::EnterVote {
        counts: VoteCounts {
            present,
            cast,
            invalid,
            tallies: tallies.iter().map(|(c, v)| Tally { candidate: c.to_string(), votes: *v }).collect(),
        },
    }
}

#[test]
fn r2_14_eighty_of_a_hundred_is_no_quorum() {
    let mut s = sim(VOTE, "2012-04-10 09:00");
    s.start(&[("党员人数", int(100))]).unwrap();
    let r = s.act("社区党组织", "党员大会", counts(80, 80, 0, &[("甲", 60), ("乙", 50), ("丙", 10)])).unwrap_err();
    assert_eq!(r.code(), "F014");
    assert_eq!(
        r.to_string(),
        "vote `党员大会` is not valid: the quorum is `present > 4 / 5 * eligible`; 80 present and 80 ballots cast of 100 entitled; at least 81 present needed"
    );
    assert_eq!(s.history.len(), 2, "a refusal records nothing");
}

#[test]
fn r2_14_eighty_one_of_a_hundred_is_a_quorum() {
    let mut s = sim(VOTE, "2012-04-10 09:00");
    s.start(&[("党员人数", int(100))]).unwrap();
    s.act("社区党组织", "党员大会", counts(81, 81, 0, &[("甲", 60), ("乙", 50), ("丙", 10)])).unwrap();
    let vote = s.state.nodes["党员大会"].vote.clone().unwrap();
    assert_eq!(vote.elected, ["甲", "乙"]);
}

#[test]
fn r2_12_a_slate_smaller_than_seats_times_six_fifths_is_refused() {
    let mut s = sim(VOTE, "2012-04-10 09:00");
    s.start(&[("党员人数", int(100))]).unwrap();
    let r = s.act("社区党组织", "党员大会", counts(90, 90, 0, &[("甲", 60), ("乙", 50)])).unwrap_err();
    assert_eq!(
        r.to_string(),
        "vote `党员大会`: the slate must satisfy `candidates >= ceil(seats * 6 / 5)`; 2 candidates for 2 seats"
    );
}

#[test]
fn r2_16_half_of_the_ballots_cast_does_not_elect_invalid_ones_counted() {
    let src = r#"
policy residents {
  role 选举委员会
  param 登记选民: int
  step 选举: vote {
    by 选举委员会
    eligible 登记选民
    quorum cast > 1/2 * eligible
    elect votes > 1/2 * cast
  }
}"#;
    let mut s = sim(src, "2012-04-20 09:00");
    s.start(&[("登记选民", int(900))]).unwrap();
    // 500 ballots cast, 20 of them invalid: 250 is not more than half of 500, 251 is.
    s.act("选举委员会", "选举", counts(520, 500, 20, &[("甲", 251), ("乙", 250), ("丙", 229)])).unwrap();
    assert_eq!(s.state.nodes["选举"].vote.clone().unwrap().elected, ["甲"]);
    let mut s = sim(src, "2012-04-20 09:00");
    s.start(&[("登记选民", int(1000))]).unwrap();
    let r = s.act("选举委员会", "选举", counts(500, 500, 0, &[("甲", 300)])).unwrap_err();
    assert_eq!(r.code(), "F014", "500 of 1000 is not more than half");
}

const FILED: &str = r#"
policy results {
  role 街道党工委
  role 社区党组织
  step 委员备案: filing { by 街道党工委 }
  step 书记审批: approval { by 街道党工委 }
}"#;

#[test]
fn r2_18_a_filing_cannot_veto_an_approval_can() {
    let mut s = sim(FILED, "2012-05-01 09:00");
    s.start(&[]).unwrap();
    let r = s.act("街道党工委", "委员备案", reject("不同意")).unwrap_err();
    assert_eq!(
        r.to_string(),
        "`reject` does not apply to step `委员备案`, a filing step; it takes `file`, `submit_form`, `withdraw`, `delegate`, `urge`"
    );
    s.act("街道党工委", "委员备案", Action::File { comment: None }).unwrap();
    assert_eq!(s.state.nodes["委员备案"].outcome, Some(Outcome::Filed));
    s.act("街道党工委", "书记审批", reject("年龄超限")).unwrap();
    assert_eq!(s.state.nodes["书记审批"].outcome, Some(Outcome::Rejected));
}

#[test]
fn a_role_not_named_in_by_is_refused_and_nothing_is_recorded() {
    let mut s = sim(FILED, "2012-05-01 09:00");
    s.start(&[]).unwrap();
    let before = s.history.len();
    let r = s.act("社区党组织", "书记审批", approve()).unwrap_err();
    assert_eq!(r.class(), RefusalClass::Forbidden);
    assert_eq!(r.to_string(), "role `社区党组织` may not act on step `书记审批`; it is for `街道党工委`");
    assert_eq!(s.history.len(), before);
}

const RULES: &str = r#"
policy rules {
  role 甲
  role 乙
  role 丙
  step 会签: approval { by 甲, 乙, 丙 rule all }
  step 或签: approval { by 甲, 乙 rule any }
  step 二之三: approval { by 甲, 乙, 丙 rule 2 of 3 }
  step 过半: approval { by 甲, 乙, 丙 rule > 1/2 }
  step 依次: approval { by 甲, 乙 rule sequence }
}"#;

#[test]
fn approval_rules_all_any_k_of_n_fraction_sequence() {
    let mut s = sim(RULES, "2024-05-06 09:00");
    s.start(&[]).unwrap();
    s.act("甲", "会签", approve()).unwrap();
    s.act("乙", "会签", approve()).unwrap();
    assert_eq!(s.status_of("会签"), Some(NodeStatus::Open), "all three must sign");
    s.act("丙", "会签", approve()).unwrap();
    assert_eq!(s.state.nodes["会签"].outcome, Some(Outcome::Approved));

    s.act("乙", "或签", approve()).unwrap();
    assert_eq!(s.state.nodes["或签"].outcome, Some(Outcome::Approved));

    s.act("甲", "二之三", reject("no")).unwrap();
    assert_eq!(s.status_of("二之三"), Some(NodeStatus::Open), "2 of 3 can still be met");
    s.act("乙", "二之三", reject("no")).unwrap();
    assert_eq!(s.state.nodes["二之三"].outcome, Some(Outcome::Rejected), "2 of 3 can no longer be met");

    s.act("甲", "过半", approve()).unwrap();
    assert_eq!(s.status_of("过半"), Some(NodeStatus::Open), "1/3 is not more than 1/2");
    s.act("丙", "过半", approve()).unwrap();
    assert_eq!(s.state.nodes["过半"].outcome, Some(Outcome::Approved));

    let r = s.act("乙", "依次", approve()).unwrap_err();
    assert_eq!(r.to_string(), "step `依次` is approved in order: it is `甲`'s turn, not `乙`'s");
    s.act("甲", "依次", approve()).unwrap();
    s.act("乙", "依次", approve()).unwrap();
    assert_eq!(s.state.status, Status::Completed);
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn an_approval_given_twice_is_refused_and_can_be_withdrawn_before_the_next_act() {
    let mut s = sim(RULES, "2024-05-06 09:00");
    s.start(&[]).unwrap();
    s.act("甲", "会签", approve()).unwrap();
    assert_eq!(s.act("甲", "会签", approve()).unwrap_err().code(), "F007");
    s.act("甲", "会签", Action::Withdraw).unwrap();
    assert!(s.state.nodes["会签"].acts.is_empty());
    s.act("甲", "会签", approve()).unwrap();
    s.act("乙", "会签", approve()).unwrap();
    assert_eq!(s.act("甲", "会签", Action::Withdraw).unwrap_err().code(), "F021");
}

const RETURN: &str = r#"
policy review {
  role 社区党组织
  role 街道党工委
  step 提名: task {
    by 社区党组织
    form {
      党员联名: int
      require 党员联名 >= 10 else "联名提名需至少10名党员"
    }
  }
  step 资格审查: approval { by 街道党工委 after 提名 on rejected return 提名 }
  step 公示: publicity { by 社区党组织 after 资格审查 min 3 days on objection return 资格审查 }
  step 选举: task { by 社区党组织 after 公示 }
}"#;

#[test]
fn r2_8_a_form_rule_refuses_with_its_message() {
    let mut s = sim(RETURN, "2012-03-21 09:00");
    s.start(&[]).unwrap();
    let r = s.act("社区党组织", "提名", form(&[("党员联名", int(9))])).unwrap_err();
    assert_eq!(r.to_string(), "step `提名`: 联名提名需至少10名党员");
    let r =
        s.act("社区党组织", "提名", form(&[("党员联名", civicflow_dsl::value::Value::Text("十".into()))])).unwrap_err();
    assert_eq!(r.to_string(), "step `提名`, field `党员联名`: expected int, got `十`");
    s.act("社区党组织", "提名", form(&[("党员联名", int(10))])).unwrap();
    assert_eq!(s.status_of("资格审查"), Some(NodeStatus::Open));
}

#[test]
fn a_rejection_returns_to_the_earlier_step_and_an_objection_reopens_the_review() {
    let mut s = sim(RETURN, "2012-03-21 09:00");
    s.start(&[]).unwrap();
    s.act("社区党组织", "提名", form(&[("党员联名", int(12))])).unwrap();
    s.act("街道党工委", "资格审查", reject("材料不全")).unwrap();
    assert_eq!(s.status_of("提名"), Some(NodeStatus::Open));
    assert_eq!(s.state.nodes["提名"].round, 1);
    assert_eq!(s.status_of("资格审查"), Some(NodeStatus::Waiting));
    s.act("社区党组织", "提名", form(&[("党员联名", int(15))])).unwrap();
    s.act("街道党工委", "资格审查", approve()).unwrap();
    assert_eq!(s.status_of("公示"), Some(NodeStatus::Open));
    // R2.11: the notice runs 3 days; an objection during it sends the candidate back to review.
    s.advance_to("2012-03-22 09:00").unwrap();
    s.act("社区党组织", "公示", Action::RaiseObjection { objection: "候选人不符合年龄条件".into() }).unwrap();
    assert_eq!(s.status_of("资格审查"), Some(NodeStatus::Open));
    assert_eq!(s.status_of("公示"), Some(NodeStatus::Waiting));
    s.act("街道党工委", "资格审查", approve()).unwrap();
    // R0.1: reopened 03-22 09:00, the notice runs 03-23, 03-24, 03-25 and ends at 03-26 00:00
    // (this test read 03-25 09:00 before periods were counted as the law counts them).
    s.advance_to("2012-03-25 23:59").unwrap();
    assert_eq!(s.status_of("公示"), Some(NodeStatus::Open), "3 days from 03-22 09:00 end at 03-26 00:00");
    s.advance_to("2012-03-26 00:00").unwrap();
    assert_eq!(s.status_of("公示"), Some(NodeStatus::Done));
    assert_eq!(
        s.history.iter().rev().find(|(e, _)| matches!(e, Event::Completed { node, .. } if node == "公示")).map(|x| x.1),
        Some(utc("2012-03-25T16:00:00Z"))
    );
    assert_eq!(s.status_of("选举"), Some(NodeStatus::Open));
    assert_eq!(s.replayed(), s.state);
}

const DEADLINE: &str = r#"
policy demand {
  role 首办部门
  role 区领导
  step 办理: task {
    by 首办部门
    due 10 workdays
    remind 2 workdays before
    on breach escalate 区领导
  }
}"#;

#[test]
fn a_ten_workday_deadline_across_the_2026_national_day_holiday() {
    let mut s = sim(DEADLINE, "2026-09-28 10:00");
    s.start(&[]).unwrap();
    // 09-29, 09-30, 10-08, 10-09, 10-10 (make-up Saturday), 10-12 … 10-16: the 10th working day.
    assert_eq!(s.state.nodes["办理"].due_at, Some(utc("2026-10-16T16:00:00Z")));
}

#[test]
fn r3_5_escalation_is_recorded_at_the_moment_of_the_breach_with_the_exact_deadline() {
    let mut s = sim(DEADLINE, "2026-09-28 10:00");
    s.start(&[]).unwrap();
    s.advance_to("2026-10-20 09:00").unwrap();
    let due = utc("2026-10-16T16:00:00Z");
    let tail: Vec<(Event, DateTime<Utc>)> = s.history.iter().skip(2).cloned().collect();
    assert_eq!(
        tail,
        vec![
            // Two working days before the deadline instant: 10-15 24:00 → 10-14 24:00 (+08:00).
            (Event::Reminded { node: "办理".into(), due_at: due }, utc("2026-10-14T16:00:00Z")),
            (Event::Overdue { node: "办理".into(), due_at: due }, due),
            (Event::Escalated { node: "办理".into(), role: "区领导".into(), due_at: due }, due),
        ]
    );
    // Late work is still accepted and recorded.
    s.act("首办部门", "办理", Action::Complete { report: "已办结".into() }).unwrap();
    assert_eq!(s.state.status, Status::Completed);
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn a_deadline_in_a_year_without_calendar_data_waits_for_it_not_guessed() {
    // R0.2: the step opens; its deadline waits for 2003's calendar (it was refused with F022
    // before: the instance could not start).
    let mut s = sim(DEADLINE, "2003-05-06 10:00");
    s.start(&[]).unwrap();
    assert_eq!(s.state.nodes["办理"].due(), Due::AwaitingCalendar { year: 2003 });
}

#[test]
fn r1_4_one_survey_per_community_then_the_plan() {
    let src = r#"
policy survey {
  role 工作组
  role 领导小组
  param 社区列表: list<text>
  step 调查: task { for 社区 in 社区列表 by 工作组 }
  step 方案: approval { by 领导小组 after 调查 }
}"#;
    let mut s = sim(src, "2008-01-10 09:00");
    let list =
        civicflow_dsl::value::Value::List(vec![crate::sim::text("甲"), crate::sim::text("乙"), crate::sim::text("丙")]);
    s.start(&[("社区列表", list)]).unwrap();
    let copies: Vec<&String> = s.state.nodes.keys().filter(|k| k.starts_with("调查[")).collect();
    assert_eq!(copies, ["调查[0]", "调查[1]", "调查[2]"]);
    assert_eq!(s.act("工作组", "调查", Action::Complete { report: "x".into() }).unwrap_err().code(), "F005");
    for k in ["调查[0]", "调查[1]"] {
        s.act("工作组", k, Action::Complete { report: "完成".into() }).unwrap();
    }
    assert_eq!(s.status_of("方案"), Some(NodeStatus::Waiting));
    s.act("工作组", "调查[2]", Action::Complete { report: "完成".into() }).unwrap();
    assert_eq!(s.status_of("调查"), Some(NodeStatus::Done));
    assert_eq!(s.status_of("方案"), Some(NodeStatus::Open));
    assert_eq!(s.replayed(), s.state);
}

const BRANCHES: &str = r#"
policy demand {
  role 社区
  role 部门
  param 需评估: bool = false
  step 受理: task { by 社区 }
  step 评估: approval { by 社区 when 需评估 after 受理 }
  step 研判: approval { by 社区 after 受理, 评估 }
  step 办理: task { by 社区 after 研判 approved }
  step 反馈: task { by 社区 after 办理 }
  step 分流: task { by 部门 after 研判 rejected }
  step 首办: task { by 部门 after 分流 }
}"#;

#[test]
fn r3_4_a_branch_not_taken_is_skipped_with_what_follows_it() {
    let mut s = sim(BRANCHES, "2012-05-07 09:00");
    s.start(&[]).unwrap();
    s.act("社区", "受理", Action::Complete { report: "已受理".into() }).unwrap();
    // Skipped by its own `when`: what waits for it goes on.
    assert_eq!(s.status_of("评估"), Some(NodeStatus::Skipped));
    s.act("社区", "研判", approve()).unwrap();
    assert_eq!(s.status_of("办理"), Some(NodeStatus::Open));
    assert_eq!(s.status_of("分流"), Some(NodeStatus::Skipped));
    // The department's steps wait for the other branch: they never open.
    assert_eq!(s.status_of("首办"), Some(NodeStatus::Skipped));
    assert!(s
        .history
        .iter()
        .any(|(e, _)| *e == Event::Skipped { node: "首办".into(), reason: "`分流` is on a branch not taken".into() }));
    s.act("社区", "办理", Action::Complete { report: "已修复".into() }).unwrap();
    s.act("社区", "反馈", Action::Complete { report: "已告知".into() }).unwrap();
    assert_eq!(s.state.status, Status::Completed);
    assert_eq!(s.replayed(), s.state);

    let mut s = sim(BRANCHES, "2012-05-07 09:00");
    s.start(&[]).unwrap();
    s.act("社区", "受理", Action::Complete { report: "已受理".into() }).unwrap();
    s.act("社区", "研判", reject("社区无法解决")).unwrap();
    assert_eq!(s.status_of("反馈"), Some(NodeStatus::Skipped));
    assert_eq!(s.status_of("首办"), Some(NodeStatus::Waiting));
}

const PHASED: &str = r#"
policy pilot {
  role 领导小组
  phase 调查 {
    window 2008-01-02 .. 2008-02-01
    step 方案: approval { by 领导小组 }
  }
  phase 准备 {
    after 调查
    window 2008-02-02 .. 2008-03-09
    step 成立中心: task { by 领导小组 due 10 workdays }
  }
}"#;

#[test]
fn r1_1_a_deadline_counts_from_the_window_of_the_phase_around_the_step() {
    let mut s = sim(PHASED, "2008-01-20 09:00");
    s.start(&[]).unwrap();
    s.act("领导小组", "调查/方案", approve()).unwrap();
    // The step opens with its phase on 01-20 but cannot be acted on before 02-02: its ten working
    // days are 02-03 (make-up Sunday), 02-04, 02-05, then after the Spring Festival 02-13 … 02-21.
    assert_eq!(s.status_of("准备/成立中心"), Some(NodeStatus::Open));
    assert_eq!(s.state.nodes["准备/成立中心"].due_at, Some(utc("2008-02-21T16:00:00Z")));
    s.advance_to("2008-02-02 09:00").unwrap();
    assert!(!s.state.nodes["准备/成立中心"].overdue, "not overdue the moment it may be acted on");
}

#[test]
fn a_meeting_without_a_form_is_recorded_with_an_empty_record() {
    let src = "policy prep { role 领导小组 step 动员部署: meeting { by 领导小组 } }";
    let mut s = sim(src, "2012-03-26 09:00");
    s.start(&[]).unwrap();
    let r = s.act("领导小组", "动员部署", form(&[("参会人数", int(30))])).unwrap_err();
    assert_eq!(r.to_string(), "step `动员部署`, field `form`: this step has no form");
    s.act("领导小组", "动员部署", form(&[])).unwrap();
    assert_eq!(s.state.nodes["动员部署"].outcome, Some(Outcome::Done));
    assert_eq!(s.state.status, Status::Completed);
}

const FORMED: &str = r#"
policy results {
  role 街道党工委
  step 委员备案: filing {
    by 街道党工委
    form {
      男性委员人数: int
      require 男性委员人数 >= 1 else "R2.13 班子成员中至少有1名男性"
    }
  }
  step 审批: approval { by 街道党工委 form { 审批意见: text } }
}"#;

#[test]
fn r2_13_a_filing_or_approval_with_a_form_is_not_decided_before_its_form() {
    let mut s = sim(FORMED, "2012-05-02 09:00");
    s.start(&[]).unwrap();
    let r = s.act("街道党工委", "委员备案", Action::File { comment: None }).unwrap_err();
    assert_eq!(r.to_string(), "step `委员备案`, field `男性委员人数`: submit the form first");
    let r = s.act("街道党工委", "委员备案", form(&[("男性委员人数", int(0))])).unwrap_err();
    assert_eq!(r.to_string(), "step `委员备案`: R2.13 班子成员中至少有1名男性");
    s.act("街道党工委", "委员备案", form(&[("男性委员人数", int(2))])).unwrap();
    s.act("街道党工委", "委员备案", Action::File { comment: None }).unwrap();
    assert_eq!(s.state.nodes["委员备案"].outcome, Some(Outcome::Filed));
    assert_eq!(s.act("街道党工委", "审批", approve()).unwrap_err().code(), "F012");
    assert_eq!(s.act("街道党工委", "审批", reject("不符合条件")).unwrap_err().code(), "F012");
    s.act("街道党工委", "审批", form(&[("审批意见", crate::sim::text("同意"))])).unwrap();
    s.act("街道党工委", "审批", approve()).unwrap();
    assert_eq!(s.state.status, Status::Completed);
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r4_2_a_later_step_reads_an_earlier_steps_form() {
    // `STEP.field` reads what a step recorded: the rating decides whether termination runs.
    let src = r#"
policy rating {
  role 业主委员会
  role 社区党组织
  step 年终评议: task {
    by 业主委员会
    form {
      参评户数: int
      满意户数: int
      require 满意户数 <= 参评户数 else "满意户数不能超过参评户数"
    }
  }
  step 解除合同: task {
    by 社区党组织
    after 年终评议
    when 年终评议.满意户数 < 1/2 * 年终评议.参评户数
  }
}"#;
    let mut s = sim(src, "2024-12-20 09:00");
    s.start(&[]).unwrap();
    s.act("业主委员会", "年终评议", form(&[("参评户数", int(200)), ("满意户数", int(99))])).unwrap();
    assert_eq!(s.status_of("解除合同"), Some(NodeStatus::Open), "99 of 200 is below 50 %");
    let mut s = sim(src, "2024-12-20 09:00");
    s.start(&[]).unwrap();
    s.act("业主委员会", "年终评议", form(&[("参评户数", int(200)), ("满意户数", int(100))])).unwrap();
    assert_eq!(s.status_of("解除合同"), Some(NodeStatus::Skipped), "100 of 200 is not below 50 %");
    assert_eq!(s.state.status, Status::Completed);
}

const COSIGN: &str = r#"
policy cosign {
  role 甲
  role 乙
  role 丙
  step 会签: approval { by 甲, 乙 rule all }
}"#;

#[test]
fn a_delegate_acts_in_the_role_handed_over_even_before_its_holder_acted() {
    let mut s = sim(COSIGN, "2024-05-06 09:00");
    s.start(&[]).unwrap();
    s.act("甲", "会签", Action::Delegate { to: "丙-1".into() }).unwrap();
    s.act("丙", "会签", approve()).unwrap();
    assert_eq!(s.state.nodes["会签"].acts[0].actor.role, "甲");
    // The role was handed over: it does not sign twice, and 乙 must still sign.
    assert_eq!(s.act("甲", "会签", approve()).unwrap_err().code(), "F007");
    assert_eq!(s.status_of("会签"), Some(NodeStatus::Open));
    s.act("乙", "会签", approve()).unwrap();
    assert_eq!(s.state.nodes["会签"].outcome, Some(Outcome::Approved));
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn a_delegation_recorded_without_its_role_hands_over_nothing() {
    let mut s = sim(COSIGN, "2024-05-06 09:00");
    s.start(&[]).unwrap();
    // As recorded before `Delegated` carried the role.
    let legacy: Event =
        serde_json::from_str(r#"{"event":"delegated","node":"会签","from":"甲-1","to":"丙-1"}"#).unwrap();
    apply(&mut s.state, &legacy, s.now);
    assert_eq!(s.act("丙", "会签", approve()).unwrap_err().code(), "F006");
}

const NOTICE: &str = r#"
policy notice {
  role 街道
  phase 公示期 {
    window 2024-05-06 .. 2024-05-31
    step 公示: publicity { by 街道 min 3 days }
    step 整改: task { by 街道 window 2024-05-06 .. 2024-05-10 }
  }
}"#;

#[test]
fn a_timer_delivered_early_or_never_asked_for_does_nothing() {
    let mut s = sim(NOTICE, "2024-05-06 09:00");
    s.start(&[]).unwrap();
    let fire = |node: &str, kind: TimerKind, at: DateTime<Utc>| Command::Fire { node: node.into(), kind, at };
    let until = s.state.nodes["公示期/公示"].min_until.unwrap();
    let min_ends = fire("公示期/公示", TimerKind::MinDurationEnds, until);
    assert_eq!(decide(s.ctx(), &s.state, &min_ends, s.now), Ok(vec![]), "the notice runs its 3 days");
    let closes = s.state.nodes["公示期/整改"].window.unwrap().1;
    let window_closes = fire("公示期/整改", TimerKind::WindowCloses, closes);
    assert_eq!(decide(s.ctx(), &s.state, &window_closes, s.now), Ok(vec![]), "the window is open until 05-10");
    // A phase's window sets no timer: one made up for it does nothing, even when due.
    let phase_closes = s.state.nodes["公示期"].window.unwrap().1;
    let made_up = fire("公示期", TimerKind::WindowCloses, phase_closes);
    assert_eq!(decide(s.ctx(), &s.state, &made_up, phase_closes), Ok(vec![]));
    // When due, they act.
    assert!(!decide(s.ctx(), &s.state, &min_ends, until).unwrap().is_empty());
    assert!(!decide(s.ctx(), &s.state, &window_closes, closes).unwrap().is_empty());
}

#[test]
fn a_minimum_duration_holds_for_every_kind_of_step() {
    let src = r#"
policy minimum {
  role 街道
  param 党员人数: int = 10
  step 备案: filing { by 街道 min 2 days }
  step 征求: consultation { by 街道 min 2 days }
  step 表决: vote { by 街道 min 2 days eligible 党员人数 elect votes > 1/2 * cast }
}"#;
    let mut s = sim(src, "2024-05-06 09:00");
    s.start(&[]).unwrap();
    let vote = counts(10, 10, 0, &[("甲", 6)]);
    for (node, action) in [
        ("备案", Action::File { comment: None }),
        ("征求", Action::GiveOpinion { opinion: "同意".into() }),
        ("表决", vote.clone()),
    ] {
        assert_eq!(s.act("街道", node, action).unwrap_err().code(), "F017", "{node}");
    }
    // R0.1: opened 05-06 09:00, 2 days run 05-07 and 05-08 and end at 05-09 00:00 (it read
    // 05-08 09:00 before the periods were counted as the law counts them).
    s.advance_to("2024-05-08 23:59").unwrap();
    assert_eq!(
        s.act("街道", "备案", Action::File { comment: None }).unwrap_err().to_string(),
        "step `备案` cannot end before 2024-05-09 00:00 +08:00 (its minimum duration)"
    );
    s.advance_to("2024-05-09 00:00").unwrap();
    s.act("街道", "备案", Action::File { comment: None }).unwrap();
    s.act("街道", "征求", Action::GiveOpinion { opinion: "同意".into() }).unwrap();
    s.act("街道", "表决", vote).unwrap();
    assert_eq!(s.state.status, Status::Completed);
}

#[test]
fn decide_with_state_returns_exactly_the_state_its_events_apply_to() {
    // The runtime stores this state as the snapshot instead of applying the events again.
    let mut s = sim(RETURN, "2012-03-21 09:00");
    s.start(&[]).unwrap();
    let command = Command::Act {
        actor: crate::sim::actor("社区党组织"),
        node: "提名".into(),
        action: form(&[("党员联名", int(12))]),
        comment: None,
    };
    let (events, next) = decide_with_state(s.ctx(), &s.state, &command, s.now).unwrap();
    let mut applied = s.state.clone();
    for e in &events {
        apply(&mut applied, e, s.now);
    }
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(next, applied);
    assert_eq!(next.nodes["资格审查"].status, NodeStatus::Open);
}
