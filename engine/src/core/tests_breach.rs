//! `on breach reassign` and `on breach return` (issue 8, item 9), and steps inside a called
//! procedure named in `due … after` and `return`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use chrono::{DateTime, Utc};

use super::*;
use crate::sim::Simulation;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const REASSIGN: &str = r#"
policy demand {
  role 首办部门
  role 业务科室
  role 区领导
  step 办理: approval {
    by 首办部门, 业务科室
    rule all
    due 10 workdays
    on breach escalate 区领导, reassign 区领导
  }
}"#;

#[test]
fn r3_5_a_late_step_reassigned_is_the_leaders_alone_and_its_one_act_decides() {
    let mut s = Simulation::new(REASSIGN, "2026-09-28 10:00").unwrap();
    s.start(&[]).unwrap();
    s.act("首办部门", "办理", Action::Approve { comment: None }).unwrap();
    s.advance_to("2026-10-20 09:00").unwrap();
    let due = utc("2026-10-16T16:00:00Z");
    let tail: Vec<(Event, DateTime<Utc>)> = s.history.iter().skip(3).cloned().collect();
    assert_eq!(
        tail,
        vec![
            (Event::Overdue { node: "办理".into(), due_at: due }, due),
            (Event::Escalated { node: "办理".into(), role: "区领导".into(), due_at: due }, due),
            (Event::Reassigned { node: "办理".into(), role: "区领导".into(), due_at: due }, due),
        ]
    );
    assert_eq!(s.state.nodes["办理"].reassigned_to.as_deref(), Some("区领导"));
    // The office that missed the limit can no longer act; nothing is recorded.
    let before = s.history.len();
    let refused = s.act("业务科室", "办理", Action::Approve { comment: None }).unwrap_err();
    assert_eq!(
        refused,
        Refusal::NotEntitled { node: "办理".into(), role: "业务科室".into(), allowed: vec!["区领导".into()] }
    );
    assert_eq!(s.history.len(), before);
    // The leader's one approval decides (会签 of the two offices no longer applies).
    s.act("区领导", "办理", Action::Approve { comment: None }).unwrap();
    assert_eq!(s.state.nodes["办理"].outcome, Some(Outcome::Approved));
    assert!(s.state.nodes["办理"].overdue, "the breach stays in the history");
    assert_eq!(s.state.status, Status::Completed);
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r3_5_the_reassigned_leader_sees_what_it_may_do() {
    let mut s = Simulation::new(REASSIGN, "2026-09-28 10:00").unwrap();
    s.start(&[]).unwrap();
    let program = s.program.clone();
    let def = program.node("办理").unwrap();
    assert_eq!(may_do(def, &s.state.nodes["办理"], "区领导"), Vec::<&str>::new());
    s.advance_to("2026-10-20 09:00").unwrap();
    let n = &s.state.nodes["办理"];
    assert_eq!(acting_roles(def, n).to_vec(), ["区领导".to_string()]);
    assert_eq!(may_do(def, n, "区领导"), ["approve", "reject", "submit_form", "urge"]);
    assert_eq!(may_do(def, n, "首办部门"), Vec::<&str>::new());
}

const RETURN: &str = r#"
policy demand {
  role 首办部门
  role 分管领导
  procedure 受理 {
    step 登记: task { by 首办部门 }
    step 分流: task { by 首办部门 after 登记 }
  }
  step 接收: call 受理 { }
  step 审核: approval {
    by 分管领导
    after 接收
    owned
    due 5 workdays after 接收.分流
    on breach notify 首办部门, return 接收.分流
  }
}"#;

#[test]
fn r3_5_a_breach_return_sends_the_matter_back_and_the_step_gets_a_fresh_deadline() {
    let mut s = Simulation::new(RETURN, "2026-11-02 09:00").unwrap();
    s.start(&[]).unwrap();
    let done = Action::Complete { report: "ok".into() };
    s.act("首办部门", "接收/登记", done.clone()).unwrap();
    s.act("首办部门", "接收/分流", done.clone()).unwrap();
    // `due 5 workdays after 接收.分流`: from the end of 11-02, the 5th working day is 11-09.
    let due = utc("2026-11-09T16:00:00Z");
    assert_eq!(s.state.nodes["审核"].due_at, Some(due));
    s.advance_to("2026-11-10 09:00").unwrap();
    let reason = "deadline missed: `审核` was due 2026-11-09T16:00:00+00:00".to_string();
    let at_breach: Vec<&Event> = s.history.iter().filter(|(_, at)| *at == due).map(|(e, _)| e).collect();
    assert_eq!(
        at_breach,
        vec![
            &Event::Overdue { node: "审核".into(), due_at: due },
            &Event::Notified { node: "审核".into(), role: "首办部门".into(), due_at: due },
            &Event::Returned {
                from: "审核".into(),
                to: "接收/分流".into(),
                reason,
                reset: vec!["接收/分流".into(), "审核".into()],
                reopened: vec!["接收".into()],
            },
            &Event::Opened { node: "接收/分流".into(), window: None, due_at: None, min_until: None },
        ],
        "the policy's own return: no 推诿 (PassedOn) although the step is owned"
    );
    assert_eq!(s.status_of("接收/分流"), Some(NodeStatus::Open));
    assert_eq!(s.status_of("审核"), Some(NodeStatus::Waiting));
    assert_eq!(s.state.nodes["审核"].round, 1);
    s.act("首办部门", "接收/分流", done).unwrap();
    // Redone on 11-10: a fresh limit of 5 working days from then, the 11-17.
    assert_eq!(s.state.nodes["审核"].due_at, Some(utc("2026-11-17T16:00:00Z")));
    assert!(!s.state.nodes["审核"].overdue);
    assert_eq!(s.replayed(), s.state);
}
