//! The incremental advance (issue 10.2) on the cases the property tests' random runs seldom
//! reach; each is also decided by the scan it replaced, which must emit the very same events.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use super::*;
use crate::sim::Simulation;

/// `丁` is skipped with its phase while `乙`, which it waits for, still waits; `己` waits for
/// `丁` and `戊`. When `甲` is rejected, `乙` lies on a branch not taken, and so does `丁`
/// through it: `己` is skipped at once, although neither it nor `丁` changed.
const SKIPPED_READER: &str = r#"
policy skipped_reader {
  role 社区
  param 需要: bool = false
  step 甲: approval { by 社区 }
  step 乙: task { by 社区 after 甲 approved }
  step 庚: task { by 社区 after 甲 rejected }
  phase 丙 {
    when 需要
    step 丁: task { by 社区 after 乙 }
  }
  step 戊: task { by 社区 }
  step 己: task { by 社区 after 丁, 戊 }
}"#;

#[test]
fn r3_4_a_branch_not_taken_reaches_through_a_node_skipped_earlier() {
    let mut s = Simulation::new(SKIPPED_READER, "2012-05-07 09:00").unwrap();
    s.start(&[]).unwrap();
    assert_eq!(s.status_of("丙/丁"), Some(NodeStatus::Skipped));
    assert_eq!(s.status_of("乙"), Some(NodeStatus::Waiting));
    assert_eq!(s.status_of("己"), Some(NodeStatus::Waiting));
    let command = Command::Act {
        actor: Actor { principal: "社区-1".into(), office: "社区".into(), role: "社区".into() },
        node: "甲".into(),
        action: Action::Reject { reason: "不符合条件".into() },
        comment: None,
    };
    let ctx = Context { program: &s.program, calendar: &s.calendar };
    let scanned = decide_by_scan(ctx, &s.state, &command, s.now).unwrap();
    let events = s.act("社区", "甲", Action::Reject { reason: "不符合条件".into() }).unwrap();
    assert_eq!(events, scanned);
    assert_eq!(s.status_of("乙"), Some(NodeStatus::Skipped));
    assert_eq!(s.status_of("己"), Some(NodeStatus::Skipped));
    assert!(events.contains(&Event::Skipped { node: "己".into(), reason: "`丙/丁` is on a branch not taken".into() }));
    assert_eq!(s.status_of("庚"), Some(NodeStatus::Open));
    assert_eq!(s.replayed(), s.state);
}
