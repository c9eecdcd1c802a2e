//! election.cf, R2.19: the party organisation of 100 or more members elects through a congress
//! of delegates (党代表大会), seed 000 §四(一)1; R2.20: the congress is counted on the delegates
//! the branches actually elected.
//!
//! The drive: 选前准备 03-21 … 03-26; the delegates 04-01 … 04-06 (candidates, a 3-day notice,
//! the street's qualification panel, the branches' assemblies); the committee's candidates
//! 04-06 … 04-17 as on the assembly route; the congress on 04-18.

use civicflow_dsl::value::Value;
use civicflow_engine::core::{NodeStatus, Refusal};
use civicflow_engine::sim::{form, int, text, Simulation};

use super::election::{elected, meeting_record, nomination, p, prep, slates, value, POOL};
use super::*;

/// A community of `members` party members with 7 committee seats, on the congress route when
/// `congress`, with `divisor` members per further delegate.
fn begin(members: i64, congress: bool, divisor: i64) -> Simulation {
    let mut s = sim("election", "2012-03-21 09:00");
    s.start(&[
        ("社区名称", text("舜耕社区")),
        ("党员人数", int(members)),
        ("户数", int(2000)),
        ("单位数", int(20)),
        ("党组织席位", int(7)),
        ("居委会席位", int(5)),
        ("监督委员会席位", int(7)),
        ("召开党代表大会", Value::Bool(congress)),
        ("代表名额基数", int(divisor)),
    ])
    .unwrap();
    s
}

fn people(prefix: &str, n: usize) -> Value {
    Value::List((1..=n).map(|i| text(&format!("{prefix}{i}"))).collect())
}

/// The delegates: `candidates` proposed, noticed, reviewed, and `elected` chosen by the branches.
fn delegates(s: &mut Simulation, candidates: usize, elected: usize) {
    s.advance_to("2012-04-01 09:00").unwrap();
    s.act("社区党组织", &p("推荐党代表候选人"), form(&[("代表候选人名单", people("代表候选人", candidates))])).unwrap();
    // Posted 04-01 09:00: `min 3 days` ends at 04-05 00:00 (R0.1), by itself.
    s.advance_to("2012-04-05 10:00").unwrap();
    assert_eq!(s.status_of(&p("党代表候选人公示")), Some(NodeStatus::Done));
    s.act("街道代表资格审查小组", &p("代表资格审查"), approve()).unwrap();
    s.advance_to("2012-04-06 10:00").unwrap();
    s.act("社区党组织", &p("选举党代表"), form(&[("当选代表名单", people("党代表", elected))])).unwrap();
}

/// The committee's candidates, 04-06 … 04-17, as on the assembly route.
fn committee_slate(s: &mut Simulation) {
    let (initial, final_) = slates(7);
    s.act("社区党组织", &p("公开推荐"), nomination(&[])).unwrap();
    s.advance_to("2012-04-08 10:00").unwrap();
    s.act("街道党工委", &p("资格审查"), approve()).unwrap();
    s.advance_to("2012-04-12 10:00").unwrap();
    s.act("街道党工委", &p("民主推荐会"), meeting_record(100, 30, 1500)).unwrap();
    s.act("社区党组织", &p("确定初步人选"), form(&[("初步人选名单", names(&POOL[..initial]))])).unwrap();
    s.advance_to("2012-04-13 10:00").unwrap();
    s.act("街道党工委", &p("组织考察"), done("考察合格")).unwrap();
    s.advance_to("2012-04-16 10:00").unwrap();
    s.act("社区党组织", &p("确定预备人选"), form(&[("预备人选名单", names(&POOL[..final_]))])).unwrap();
    s.advance_to("2012-04-17 10:00").unwrap();
    s.act("街道党工委", &p("预备人选审批"), approve()).unwrap();
}

#[test]
fn r2_19_delegate_seats_are_thirty_plus_one_per_divisor_members() {
    // "以30名为基数,再按每30-50名党员增加1名代表": 30 + floor(members / divisor).
    for (members, divisor, seats) in [(100, 30, 33), (100, 50, 32), (350, 50, 37), (350, 30, 41), (149, 50, 32)] {
        let s = begin(members, true, divisor);
        assert_eq!(value(&s, "党代表名额"), seats.to_string(), "{members} members, one per {divisor}");
    }
    // The divisor is the seed's 30 to 50 (F011 at start, the bound named).
    let mut s = sim("election", "2012-03-21 09:00");
    let e = s
        .start(&[
            ("社区名称", text("舜耕社区")),
            ("党员人数", int(350)),
            ("户数", int(2000)),
            ("单位数", int(20)),
            ("党组织席位", int(7)),
            ("居委会席位", int(5)),
            ("监督委员会席位", int(7)),
            ("召开党代表大会", Value::Bool(true)),
            ("代表名额基数", int(29)),
        ])
        .unwrap_err();
    assert_eq!(e.code(), "F011");
    assert!(s.history.is_empty(), "a refused start records nothing");
}

#[test]
fn r2_19_the_congress_route_is_refused_below_100_members() {
    let mut s = begin(99, true, 50);
    s.act("街道党工委", "选前准备/成立工作机构", done("成立")).unwrap();
    let before = s.history.len();
    let e = s.act("街道选举领导小组", "选前准备/制定工作方案", form(&[("方案", text("方案"))])).unwrap_err();
    assert_eq!(
        e,
        Refusal::RuleFailed {
            node: "选前准备/制定工作方案".into(),
            message: "R2.19 党员100名以上的社区党组织方可召开党代表大会进行换届选举".into(),
        }
    );
    assert_eq!(s.history.len(), before, "nothing recorded");
    // At 100 the congress is allowed (and the committee of a 党委 has 7 to 9 seats).
    let mut s = begin(100, true, 50);
    s.act("街道党工委", "选前准备/成立工作机构", done("成立")).unwrap();
    s.act("街道选举领导小组", "选前准备/制定工作方案", form(&[("方案", text("方案"))])).unwrap();
}

#[test]
fn r2_19_delegate_candidates_exceed_the_seats_by_twenty_percent() {
    // 350 members, one delegate per 50: 37 seats, at least ceil(37 × 6/5) = 45 candidates.
    let mut s = begin(350, true, 50);
    prep(&mut s);
    s.advance_to("2012-04-01 09:00").unwrap();
    assert_eq!(s.status_of(&p("推荐党代表候选人")), Some(NodeStatus::Open));
    assert_eq!(s.status_of(&p("公开推荐")), Some(NodeStatus::Waiting), "the committee's candidates come after");
    let before = s.history.len();
    let e =
        s.act("社区党组织", &p("推荐党代表候选人"), form(&[("代表候选人名单", people("代表候选人", 44))])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "step `正式选举/党组织换届/推荐党代表候选人`: R2.19 党代表候选人须多于应选代表名额20%(不少于名额的6/5,向上取整)"
    );
    assert_eq!(s.history.len(), before);
    s.act("社区党组织", &p("推荐党代表候选人"), form(&[("代表候选人名单", people("代表候选人", 45))])).unwrap();
    // The notice runs its 3 days; an objection sends the list back to the branches.
    s.advance_to("2012-04-02 10:00").unwrap();
    s.act(
        "社区党组织",
        &p("党代表候选人公示"),
        civicflow_engine::core::Action::RaiseObjection { objection: "候选人代表性不足".into() },
    )
    .unwrap();
    assert_eq!(s.status_of(&p("推荐党代表候选人")), Some(NodeStatus::Open));
    // More delegates elected than seats is refused.
    s.act("社区党组织", &p("推荐党代表候选人"), form(&[("代表候选人名单", people("代表候选人", 45))])).unwrap();
    s.advance_to("2012-04-06 10:00").unwrap();
    s.act("街道代表资格审查小组", &p("代表资格审查"), approve()).unwrap();
    let e = s.act("社区党组织", &p("选举党代表"), form(&[("当选代表名单", people("党代表", 38))])).unwrap_err();
    assert_eq!(e.to_string(), "step `正式选举/党组织换届/选举党代表`: R2.19 当选党代表人数不能超过代表名额");
}

#[test]
fn r2_19_and_r2_20_the_congress_is_counted_on_the_delegates_elected() {
    let mut s = begin(350, true, 50);
    prep(&mut s);
    // 37 seats; the branches elect 36 (one branch's delegate was not elected).
    delegates(&mut s, 45, 36);
    committee_slate(&mut s);
    s.advance_to("2012-04-18 10:00").unwrap();
    let tallies: Vec<(&str, u64)> =
        POOL[..9].iter().zip([28, 27, 26, 25, 24, 23, 20, 10, 5]).map(|(n, v)| (*n, v)).collect();
    // More than 4/5 of the 36 delegates: 28 present is not enough, 29 is (R2.14 on the congress).
    let before = s.history.len();
    let e = s.act("社区党组织", &p("差额选举委员"), ballots(28, 28, 0, &tallies)).unwrap_err();
    assert_eq!(e.code(), "F014");
    assert_eq!(
        e.to_string(),
        "vote `正式选举/党组织换届/差额选举委员` is not valid: R2.14 到会党员须超过应到会党员的五分之四,选举方为有效 (the quorum is `present > 4 / 5 * eligible`; 28 present and 28 ballots cast of 36 entitled; at least 29 present needed)"
    );
    assert_eq!(s.history.len(), before);
    // The congress elects the 7 with more than half of the 29 present (15 votes and up).
    s.act("社区党组织", &p("差额选举委员"), ballots(29, 29, 0, &tallies)).unwrap();
    let vote = s.state.nodes[&p("差额选举委员")].vote.clone().unwrap();
    assert_eq!((vote.eligible, vote.seats), (36, Some(7)));
    assert_eq!(elected(&s, &p("差额选举委员")), POOL[..7]);
    // R2.15 on the congress too: then the secretary and deputy, 等额, on the same 36.
    s.act("社区党组织", &p("等额选举书记副书记"), ballots(30, 30, 0, &[("王建国", 28), ("李红梅", 26)])).unwrap();
    let vote = s.state.nodes[&p("等额选举书记副书记")].vote.clone().unwrap();
    assert_eq!(vote.eligible, 36);
}

#[test]
fn r2_19_the_assembly_route_skips_the_delegates_and_counts_every_member() {
    let mut s = begin(350, false, 50);
    prep(&mut s);
    s.advance_to("2012-04-01 09:00").unwrap();
    for step in ["推荐党代表候选人", "党代表候选人公示", "代表资格审查", "选举党代表"] {
        assert_eq!(s.status_of(&p(step)), Some(NodeStatus::Skipped), "{step}");
    }
    assert_eq!(s.status_of(&p("公开推荐")), Some(NodeStatus::Open));
}
