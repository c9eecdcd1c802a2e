//! community_assessment.cf: 社区工作月度考核 (R0.3, R3.7), on the simulated clock.

use civicflow_engine::core::{Event, NodeStatus, Status};
use civicflow_engine::sim::{date, form, int, text};

use super::*;

/// R0.3: the month comes round by itself. Started for January, the assessment opens the next
/// cycle at 00:00 of each first day, exactly once, with the community carried over and the
/// month as its due date: twelve cycles in a simulated year, each linked to the one before.
#[test]
fn r0_3_a_monthly_assessment_opens_the_next_cycle_on_the_first_of_each_month() {
    let mut s = sim("community_assessment", "2026-01-01 00:00");
    s.start(&[("社区名称", text("桂林社区")), ("考核月份", date("2026-01-01"))]).unwrap();
    let mut opened = Vec::new();
    for month in 1..=12 {
        // The month's work, so that the instance completes before its successor opens.
        s.act("社区居委会", "自评", form(&[("自评报告", text("按月自评"))])).unwrap();
        s.act("街道办事处", "考核评定", form(&[("等次", text("合格")), ("得分", int(80))])).unwrap();
        s.act("社区居委会", "结果反馈", civicflow_engine::core::Action::File { comment: None }).unwrap();
        assert_eq!(s.state.status, Status::Completed, "month {month}");
        let next_month =
            if month == 12 { "2027-01-01 00:00".to_string() } else { format!("2026-{:02}-01 00:00", month + 1) };
        // Moved far past the instant: the timer fires once, at its own instant.
        s.advance_to(&format!("{}-28 12:00", &next_month[..7])).unwrap();
        let events: Vec<(&Event, String)> = s
            .history
            .iter()
            .filter(|(e, _)| matches!(e, Event::NextCycleOpened { .. }))
            .map(|(e, at)| (e, local(*at)))
            .collect();
        assert_eq!(events.len(), 1, "month {month}: one next cycle");
        let Event::NextCycleOpened { cycle, instance, due_at } = events[0].0 else { unreachable!() };
        assert_eq!(
            (*cycle, local(*due_at), events[0].1.as_str()),
            (month + 1, next_month.clone(), next_month.as_str())
        );
        assert_eq!(instance, &format!("sim~{}", month + 1));
        let next = s.next_cycle().unwrap().expect("the next cycle is open");
        assert_eq!(next.id, *instance);
        assert_eq!(next.state.params["社区名称"], text("桂林社区"));
        assert_eq!(next.state.params["考核月份"], date(&next_month[..10]));
        assert_eq!(next.state.cycle.number, month + 1);
        assert_eq!(next.state.cycle.previous.as_deref(), Some(s.id.as_str()));
        assert_eq!(next.status_of("自评"), Some(NodeStatus::Open));
        opened.push(next.id.clone());
        s = next;
    }
    assert_eq!(opened.len(), 12);
    assert_eq!(opened.last().map(String::as_str), Some("sim~13"));
}
