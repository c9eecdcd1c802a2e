//! Issue 11 on residents_demand.cf: a department's limit extended across the 2026 Mid-Autumn and
//! National Day holidays (延期, by 民生办, who coordinates it), and the matter copied to the
//! petitions office for information (抄送).

use civicflow_engine::core::{Action, Actor, Event, Reader};
use civicflow_engine::sim::{date, form, text, Simulation};

use super::*;

/// Taken in on Monday 2026-09-07, forwarded and named the same day; the department takes it in
/// on Tuesday 09-08 09:00.
fn owned_2026() -> Simulation {
    let mut s = sim("residents_demand", "2026-09-07 09:00");
    s.start(&[("社区名称", text("舜耕社区"))]).unwrap();
    let intake = form(&[
        ("诉求人", text("张三")),
        ("联系电话", text("13800000000")),
        ("诉求内容", text("楼道墙体开裂")),
        ("受理日期", date("2026-09-07")),
    ]);
    s.act("社区居委会", "诉求受理", intake).unwrap();
    s.act("社区居委会", "社区研判", reject("需主管部门处理")).unwrap();
    s.act("民生办", "民生办分流", form(&[("首办部门名称", text("住建局")), ("督办人", text("李四"))])).unwrap();
    s.advance_to("2026-09-08 09:00").unwrap();
    s.act("首办部门", "首办受理", done("已受理")).unwrap();
    s
}

#[test]
fn issue_11_1_an_extension_across_the_2026_national_day_holiday() {
    let mut s = owned_2026();
    // 15 working days from 09-09: 09-09 … 09-18 (8), the Sunday 09-20 worked for 国庆 (9),
    // 09-21 … 09-24 (13); 中秋 09-25 … 09-27 off; 09-28, 09-29 (15) → the end of 09-29.
    assert_eq!(due(&s, "首办办结").as_deref(), Some("2026-09-30 00:00"));
    s.advance_to("2026-09-28 10:00").unwrap();
    let own = s.act("首办部门", "首办办结", Action::Extend { amount: 5, reason: "需检测".into() });
    assert_eq!(own.unwrap_err().code(), "F047", "the department does not extend its own limit");
    let events =
        s.act("民生办", "首办办结", Action::Extend { amount: 5, reason: "需委托第三方检测房屋安全".into() }).unwrap();
    // 5 more: 09-30; 国庆 10-01 … 10-07 off; 10-08, 10-09, the Saturday 10-10 worked, Monday
    // 10-12 → the end of Monday 10-12.
    assert_eq!(
        events,
        vec![Event::Extended {
            node: "首办办结".into(),
            from: at("2026-09-30 00:00"),
            to: at("2026-10-13 00:00"),
            amount: 5,
            reason: "需委托第三方检测房屋安全".into(),
        }]
    );
    // Nothing lapses at the old limit; the breach falls at the new one, escalated then (R3.5).
    s.advance_to("2026-10-12 23:00").unwrap();
    assert!(!s.state.nodes["首办办结"].overdue);
    let breach = s.advance_to("2026-10-13 09:00").unwrap();
    assert_eq!(breach.iter().map(|e| e.kind()).collect::<Vec<_>>(), ["overdue", "escalated", "escalated", "notified"]);
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn issue_11_2_the_matter_is_copied_to_the_petitions_office_until_it_reads_it() {
    let mut s = owned_2026();
    s.act("民生办", "首办办结", Action::CopyTo { to: "区信访局".into(), message: Some("请知悉".into()) }).unwrap();
    let readers = civicflow_engine::core::open_steps(&s.program, &s.state)
        .into_iter()
        .find(|o| o.node == "首办办结")
        .map(|o| o.readers)
        .unwrap_or_default();
    assert!(readers.contains(&Reader::CopiedTo { office: "区信访局".into() }), "{readers:?}");
    let petitions = Actor { principal: "钱主任".into(), office: "区信访局".into(), role: "信访部门".into() };
    s.act_as(petitions.clone(), "首办办结", Action::MarkRead).unwrap();
    assert_eq!(s.act_as(petitions, "首办办结", Action::MarkRead).unwrap_err().code(), "F058");
    assert_eq!(s.replayed(), s.state);
}
