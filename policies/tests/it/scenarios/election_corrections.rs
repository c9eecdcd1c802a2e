//! Issue 11.4 on election.cf: the street's leadership group (`may correct`) corrects a start
//! parameter typed wrongly. What was computed from it is computed again — the committee's size
//! band, the number of representatives, the windows and deadlines of what is open — and a
//! correction that would make the work plan's seats break R2.4 is refused, naming the step.

use std::collections::BTreeMap;

use civicflow_dsl::value::Value;
use civicflow_engine::core::{Actor, Command, Event, ParamChange, RecomputedStep, Refusal};
use civicflow_engine::sim::{int, text, Simulation};

use super::election::{prep, value};
use super::*;

fn begin() -> Simulation {
    let mut s = sim("election", "2012-03-21 09:00");
    s.start(&[
        ("社区名称", text("舜耕社区")),
        ("党员人数", int(60)),
        ("户数", int(2000)),
        ("单位数", int(20)),
        ("党组织席位", int(5)),
        ("居委会席位", int(5)),
        ("监督委员会席位", int(7)),
    ])
    .unwrap();
    s
}

fn correct(s: &mut Simulation, role: &str, params: &[(&str, Value)]) -> Result<Vec<Event>, Refusal> {
    let actor = Actor { principal: "孙组长".into(), office: "舜耕街道办事处".into(), role: role.into() };
    let params: BTreeMap<String, Value> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    s.command(Command::Correct { actor, params, reason: "户数录入有误,按普查数据更正".into() })
}

#[test]
fn issue_11_4_correcting_the_households_and_seats_recomputes_the_committee_size() {
    let mut s = begin();
    prep(&mut s);
    assert_eq!((value(&s, "居委会职数下限"), value(&s, "居委会职数上限")), ("3".into(), "5".into()));
    // Only the role declared `may correct` (F059).
    let refused = correct(&mut s, "街道党工委", &[("户数", int(3000))]).unwrap_err();
    assert_eq!(refused.code(), "F059");
    assert_eq!(
        refused.to_string(),
        "role `街道党工委` may not correct this instance's parameters; that is for `街道选举领导小组`"
    );
    // 3000 households: the band is 5 to 7 (R2.5) and 65 resident representatives at least (R2.6);
    // 7 seats keep the work plan's R2.5 rule.
    let events = correct(&mut s, "街道选举领导小组", &[("户数", int(3000)), ("居委会席位", int(7))]).unwrap();
    let Event::Corrected { params, values, steps, reason } = &events[0] else { panic!("{events:?}") };
    assert_eq!(
        params,
        &vec![
            ParamChange { param: "居委会席位".into(), from: Some(int(5)), to: int(7) },
            ParamChange { param: "户数".into(), from: Some(int(2000)), to: int(3000) },
        ]
    );
    assert_eq!(reason, "户数录入有误,按普查数据更正");
    assert_eq!(steps, &vec![], "nothing open counts from the households");
    assert_eq!((values["居委会职数下限"].to_string(), values["居委会职数上限"].to_string()), ("5".into(), "7".into()));
    assert_eq!(value(&s, "居民代表下限"), "65");
    assert_eq!(s.state.params["居委会席位"], int(7));
    // Nothing else changed: the same value twice is refused, as an unknown parameter is.
    let again = correct(&mut s, "街道选举领导小组", &[("户数", int(3000))]).unwrap_err();
    assert_eq!(again.to_string(), "parameter `户数`: is 3000 already");
    let unknown = correct(&mut s, "街道选举领导小组", &[("人口", int(3000))]).unwrap_err();
    assert_eq!(unknown.code(), "F011");
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn issue_11_4_a_correction_that_breaks_the_completed_work_plan_is_refused_naming_it() {
    let mut s = begin();
    prep(&mut s);
    let version = s.state.version;
    // 120 members make a 党委 of 7 to 9 (R2.4): the plan's 5 seats would break its rule.
    let refused = correct(&mut s, "街道选举领导小组", &[("党员人数", int(120))]).unwrap_err();
    assert_eq!(refused.code(), "F060");
    assert_eq!(
        refused.to_string(),
        "the correction would make completed step `选前准备/制定工作方案` invalid: R2.4 党组织委员职数不在职数范围内:\
         党员50人以下(党支部)3至5人,51至99人(党总支)5至7人,100人以上(党委)7至9人"
    );
    assert_eq!(s.state.version, version, "nothing recorded");
    // With the seats corrected too, it holds.
    correct(&mut s, "街道选举领导小组", &[("党员人数", int(120)), ("党组织席位", int(7))]).unwrap();
    assert_eq!(value(&s, "党组织类型"), "党委");
}

#[test]
fn issue_11_4_correcting_the_start_date_moves_the_open_windows_and_deadlines() {
    let mut s = begin();
    // 选前准备 03-21 .. 03-31; 成立工作机构 opened 03-21 09:00, due in 3 working days: 03-26.
    assert_eq!(window(&s, "选前准备"), Some(("2012-03-21 00:00".into(), "2012-04-01 00:00".into())));
    assert_eq!(due(&s, "选前准备/成立工作机构"), Some("2012-03-27 00:00".into()));
    s.advance_to("2012-03-21 10:00").unwrap();
    let events = correct(&mut s, "街道选举领导小组", &[("开始", Value::Date("2012-03-23".parse().unwrap()))]).unwrap();
    let Event::Corrected { steps, .. } = &events[0] else { panic!("{events:?}") };
    assert_eq!(
        steps,
        &vec![
            RecomputedStep {
                node: "选前准备".into(),
                window: Some((at("2012-03-23 00:00"), at("2012-04-03 00:00"))),
                due_at: None,
                min_until: None,
            },
            // Its clock starts with the phase's window now: 03-26, 03-27, 03-28.
            RecomputedStep {
                node: "选前准备/成立工作机构".into(),
                window: None,
                due_at: Some(at("2012-03-29 00:00")),
                min_until: None,
            },
        ]
    );
    assert_eq!(due(&s, "选前准备/成立工作机构"), Some("2012-03-29 00:00".into()));
    // The phase opens on the corrected date: acting before it is refused (F008).
    let early = s.act("街道党工委", "选前准备/成立工作机构", done("成立")).unwrap_err();
    assert_eq!(early.code(), "F008");
    s.advance_to("2012-03-23 09:00").unwrap();
    s.act("街道党工委", "选前准备/成立工作机构", done("成立")).unwrap();
    assert_eq!(s.replayed(), s.state);
}
