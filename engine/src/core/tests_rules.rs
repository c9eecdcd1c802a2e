//! Language additions of issue 8 item 9 in the core: parameter ranges (F011 with the bound) and
//! durations from parameters (F045 when negative). Each test names the rule it checks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use chrono::{DateTime, Utc};

use super::*;
use crate::sim::{int, Simulation};

fn sim(src: &str, now: &str) -> Simulation {
    Simulation::new(src, now).unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const RANGES: &str = r#"
policy ranges {
  param 党员人数: int >= 0
  param 代表名额基数: int in 30..=50 = 40
  param 满意率: decimal <= 1 = 1
  role 街道党工委
  step 登记: task { by 街道党工委 }
}"#;

#[test]
fn r2_4_an_election_with_minus_one_party_members_does_not_start() {
    let mut s = sim(RANGES, "2012-03-21 09:00");
    let r = s.start(&[("党员人数", int(-1))]).unwrap_err();
    assert_eq!(r.code(), "F011");
    assert_eq!(r.to_string(), "parameter `党员人数`: `-1` must be at least 0 (range `>= 0`)");
    assert!(s.history.is_empty(), "a refusal records nothing");
    // The bound itself is inside.
    s.start(&[("党员人数", int(0))]).unwrap();
    assert_eq!(s.state.params.get("党员人数"), Some(&int(0)));
}

#[test]
fn r2_19_the_delegate_divisor_is_thirty_to_fifty_both_included() {
    for (given, ok) in [(29, false), (30, true), (50, true), (51, false)] {
        let mut s = sim(RANGES, "2012-03-21 09:00");
        let r = s.start(&[("党员人数", int(120)), ("代表名额基数", int(given))]);
        match (ok, r) {
            (true, Ok(_)) => assert_eq!(s.state.params.get("代表名额基数"), Some(&int(given))),
            (false, Err(e)) => {
                let bound = if given < 30 { "at least 30" } else { "at most 50" };
                assert_eq!(
                    e.to_string(),
                    format!("parameter `代表名额基数`: `{given}` must be {bound} (range `in 30..=50`)")
                );
                assert!(s.history.is_empty());
            }
            (ok, r) => panic!("{given}: expected ok={ok}, got {r:?}"),
        }
    }
}

#[test]
fn r4_2_a_rate_above_one_is_refused_with_its_bound() {
    let mut s = sim(RANGES, "2012-03-21 09:00");
    let r =
        s.start(&[("党员人数", int(3)), ("满意率", Value::Number(num_rational::BigRational::new(3.into(), 2.into())))]);
    assert_eq!(r.unwrap_err().to_string(), "parameter `满意率`: `3/2` must be at most 1 (range `<= 1`)");
}

const AMOUNTS: &str = r#"
policy amounts {
  param 办结时限: int
  param 公示天数: int = 3
  role 职能部门
  step 办理: task {
    by 职能部门
    due 办结时限 workdays
  }
  step 核实: task {
    by 职能部门
    due (办结时限 + 2) days
  }
  step 公示: publicity {
    by 职能部门
    after 办理
    min 公示天数 days
  }
}"#;

const LITERAL: &str = r#"
policy amounts {
  role 职能部门
  step 办理: task {
    by 职能部门
    due 10 workdays
  }
  step 核实: task {
    by 职能部门
    due 12 days
  }
  step 公示: publicity {
    by 职能部门
    after 办理
    min 5 days
  }
}"#;

/// R3.4 (限期办结): a limit given per matter (`due 办结时限 workdays`) falls where the same
/// limit written as a number does.
#[test]
fn r3_4_a_limit_from_a_parameter_falls_where_the_written_limit_does() {
    let mut s = sim(AMOUNTS, "2012-05-07 10:00");
    s.start(&[("办结时限", int(10)), ("公示天数", int(5))]).unwrap();
    let mut lit = sim(LITERAL, "2012-05-07 10:00");
    lit.start(&[]).unwrap();
    // 10 working days from Monday 2012-05-07: the last is 05-21; the limit ends at its 24:00.
    assert_eq!(s.state.nodes["办理"].due_at, Some(utc("2012-05-21T16:00:00Z")));
    assert_eq!(s.state.nodes["核实"].due_at, Some(utc("2012-05-19T16:00:00Z")));
    assert_eq!(s.state.nodes["办理"].due_at, lit.state.nodes["办理"].due_at);
    assert_eq!(s.state.nodes["核实"].due_at, lit.state.nodes["核实"].due_at);
    s.act("职能部门", "办理", Action::Complete { report: "办结".into() }).unwrap();
    lit.act("职能部门", "办理", Action::Complete { report: "办结".into() }).unwrap();
    assert_eq!(s.state.nodes["公示"].min_until, lit.state.nodes["公示"].min_until);
    // R0.1: 5 days from 05-07 10:00 run 05-08 … 05-12 and end at 05-13 00:00 (+08:00).
    assert_eq!(s.state.nodes["公示"].min_until, Some(utc("2012-05-12T16:00:00Z")));
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r3_4_a_negative_limit_does_not_start() {
    let mut s = sim(AMOUNTS, "2012-05-07 10:00");
    let r = s.start(&[("办结时限", int(-3))]).unwrap_err();
    assert_eq!(r.code(), "F045");
    assert_eq!(r.to_string(), "step `办理`: its duration `办结时限` is -3; a period cannot be negative");
    assert!(s.history.is_empty(), "a refusal records nothing");
}

const ANY_OF: &str = r#"
policy any_join {
  role 街道
  step 电话受理: task { by 街道 }
  step 窗口受理: task { by 街道 }
  step 复核: approval { by 街道 }
  step 办理: task {
    by 街道
    after any(电话受理, 窗口受理)
  }
  step 归档: task {
    by 街道
    after any(复核 approved)
  }
}"#;

/// R3.4 (a demand taken in by phone or at the window): `after any(A, B)` opens with the first of
/// them done; the other goes on. A group none of which can happen any more is skipped.
#[test]
fn r3_4_an_any_of_join_opens_with_the_first_done() {
    let mut s = sim(ANY_OF, "2012-05-07 10:00");
    s.start(&[]).unwrap();
    assert_eq!(s.status_of("办理"), Some(NodeStatus::Waiting));
    s.act("街道", "窗口受理", Action::Complete { report: "窗口登记".into() }).unwrap();
    assert_eq!(s.status_of("办理"), Some(NodeStatus::Open));
    assert_eq!(s.status_of("电话受理"), Some(NodeStatus::Open));
    s.act("街道", "复核", Action::Reject { reason: "材料不全".into() }).unwrap();
    assert_eq!(s.status_of("归档"), Some(NodeStatus::Skipped));
    assert!(s
        .history
        .iter()
        .any(|(e, _)| *e == Event::Skipped { node: "归档".into(), reason: "none of `复核` happened".into() }));
    assert_eq!(s.replayed(), s.state);
}
