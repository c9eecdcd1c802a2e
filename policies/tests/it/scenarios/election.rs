//! election.cf: 社区两委换届选举 (R2.1–R2.18), 2012 (seed 003's dates from the default of 开始).
//!
//! The drive: 选前准备 03-21 … 03-26; the party organisation 04-01 … 04-19; the residents'
//! committee from 04-20; the oversight committee; the handover; 总结完善 from 05-21.

use civicflow_dsl::value::Value;
use civicflow_engine::core::{Action, Event, NodeStatus, Outcome, Refusal, Status};
use civicflow_engine::sim::{form, int, text, Simulation};

use super::*;

pub(super) const PARTY: &str = "正式选举/党组织换届";
const RESIDENTS: &str = "正式选举/居委会换届";
const OVERSIGHT: &str = "正式选举/监督委员会换届";

pub(super) fn p(step: &str) -> String {
    format!("{PARTY}/{step}")
}

fn r(step: &str) -> String {
    format!("{RESIDENTS}/{step}")
}

fn o(step: &str) -> String {
    format!("{OVERSIGHT}/{step}")
}

/// The parameters of an instance; `Setup::default()` is a community of 60 party members and
/// 2000 households with 20 units.
#[derive(Clone, Copy)]
struct Setup {
    members: i64,
    households: i64,
    units: i64,
    party_seats: i64,
    rc_seats: i64,
    voters: i64,
}

impl Default for Setup {
    fn default() -> Self {
        Setup { members: 60, households: 2000, units: 20, party_seats: 5, rc_seats: 5, voters: 3000 }
    }
}

fn begin(x: Setup) -> Simulation {
    let mut s = sim("election", "2012-03-21 09:00");
    s.start(&[
        ("社区名称", text("舜耕社区")),
        ("党员人数", int(x.members)),
        ("户数", int(x.households)),
        ("单位数", int(x.units)),
        ("党组织席位", int(x.party_seats)),
        ("居委会席位", int(x.rc_seats)),
        ("监督委员会席位", int(7)),
    ])
    .unwrap();
    s
}

/// 选前准备, 03-21 … 03-26.
pub(super) fn prep(s: &mut Simulation) {
    s.act("街道党工委", "选前准备/成立工作机构", done("成立领导小组及办公室")).unwrap();
    s.advance_to("2012-03-22 10:00").unwrap();
    s.act("街道选举领导小组", "选前准备/制定工作方案", form(&[("方案", text("换届选举工作方案"))])).unwrap();
    s.advance_to("2012-03-26 10:00").unwrap();
    // A meeting with nothing to record takes an empty record.
    s.act("街道选举领导小组", "选前准备/动员部署", form(&[])).unwrap();
    s.act("街道选举领导小组", "选前准备/集中培训", done("培训选举工作人员")).unwrap();
}

pub(super) const POOL: [&str; 11] =
    ["王建国", "李红梅", "张志强", "刘芳", "陈伟", "杨帆", "赵敏", "黄磊", "周洁", "吴涛", "郑丽"];

/// A nomination form: a 45-year-old member nominated by 12 party members, with no exclusion.
pub(super) fn nomination(changes: &[(&str, Value)]) -> Action {
    let mut fields = vec![
        ("被推荐人", text("王建国")),
        ("推荐岗位", text("委员")),
        ("联名推荐", Value::Bool(true)),
        ("联名党员人数", int(12)),
        ("联名居民人数", int(0)),
        ("本人同意", Value::Bool(true)),
        ("年龄", int(45)),
        ("新进人员", Value::Bool(false)),
        ("荣誉放宽", Value::Bool(false)),
        ("受过刑事处罚", Value::Bool(false)),
        ("刑满已满年数", int(0)),
        ("受过劳教", Value::Bool(false)),
        ("解除劳教已满年数", int(0)),
        ("违反计划生育", Value::Bool(false)),
        ("计生已处理", Value::Bool(false)),
        ("计生处理已满年数", int(0)),
        ("涉黑涉恶受处理", Value::Bool(false)),
        ("涉黑涉恶处理已满年数", int(0)),
        ("具有行为能力", Value::Bool(true)),
    ];
    for (k, v) in changes {
        fields.retain(|(f, _)| f != k);
        fields.push((k, v.clone()));
    }
    form(&fields)
}

pub(super) fn meeting_record(attendees: i64, deputies: i64, longest: i64) -> Action {
    form(&[("参会人数", int(attendees)), ("代表人数", int(deputies)), ("最长介绍材料字数", int(longest))])
}

/// ceil(seats × 13/10) and ceil(seats × 6/5).
pub(super) fn slates(seats: i64) -> (usize, usize) {
    (((seats * 13 + 9) / 10) as usize, ((seats * 6 + 4) / 5) as usize)
}

/// The party organisation from nomination to the approved slate, 04-01 … 04-16.
fn nominate(s: &mut Simulation, seats: i64) {
    let (initial, final_) = slates(seats);
    s.advance_to("2012-04-01 09:00").unwrap();
    s.act("社区党组织", &p("公开推荐"), nomination(&[])).unwrap();
    s.advance_to("2012-04-05 10:00").unwrap();
    s.act("街道党工委", &p("资格审查"), approve()).unwrap();
    // The 3-day notice of the review ends on 04-08 10:00 by itself.
    s.advance_to("2012-04-09 10:00").unwrap();
    s.act("街道党工委", &p("民主推荐会"), meeting_record(100, 30, 1500)).unwrap();
    s.act("社区党组织", &p("确定初步人选"), form(&[("初步人选名单", names(&POOL[..initial]))])).unwrap();
    s.advance_to("2012-04-10 10:00").unwrap();
    s.act("街道党工委", &p("组织考察"), done("考察合格")).unwrap();
    s.advance_to("2012-04-13 10:00").unwrap();
    s.act("社区党组织", &p("确定预备人选"), form(&[("预备人选名单", names(&POOL[..final_]))])).unwrap();
    s.advance_to("2012-04-16 10:00").unwrap();
    s.act("街道党工委", &p("预备人选审批"), approve()).unwrap();
}

/// The party assembly of the default setup (60 members, 5 seats), 04-18 … 04-19.
fn party_vote(s: &mut Simulation) {
    s.advance_to("2012-04-18 10:00").unwrap();
    let tallies = [("王建国", 50), ("李红梅", 48), ("张志强", 45), ("刘芳", 40), ("陈伟", 30), ("杨帆", 20)];
    s.act("社区党组织", &p("差额选举委员"), ballots(55, 55, 1, &tallies)).unwrap();
    s.act("社区党组织", &p("等额选举书记副书记"), ballots(55, 55, 0, &[("王建国", 52), ("李红梅", 50)])).unwrap();
    s.act("街道党工委", &p("委员备案"), members_filed(3)).unwrap();
    s.act("街道党工委", &p("委员备案"), file()).unwrap();
    s.advance_to("2012-04-19 10:00").unwrap();
    s.act("街道党工委", &p("书记副书记批准"), approve()).unwrap();
    s.act("社区党组织", &p("张榜公布"), done("选举结果已张榜公布")).unwrap();
}

pub(super) fn members_filed(men: i64) -> Action {
    form(&[("当选委员名单", names(&["王建国", "李红梅", "张志强", "刘芳", "陈伟"])), ("男性委员人数", int(men))])
}

fn representatives(residents: i64, units: i64) -> Action {
    form(&[("居民代表人数", int(residents)), ("单位代表人数", int(units))])
}

fn candidate() -> Action {
    form(&[
        ("被提名人", text("孙立")),
        ("提名岗位", text("主任")),
        ("年龄", int(48)),
        ("新进人员", Value::Bool(false)),
        ("荣誉放宽", Value::Bool(false)),
        ("受过刑事处罚", Value::Bool(false)),
        ("刑满已满年数", int(0)),
        ("受过劳教", Value::Bool(false)),
        ("解除劳教已满年数", int(0)),
        ("违反计划生育", Value::Bool(false)),
        ("计生已处理", Value::Bool(false)),
        ("计生处理已满年数", int(0)),
        ("涉黑涉恶受处理", Value::Bool(false)),
        ("涉黑涉恶处理已满年数", int(0)),
        ("具有行为能力", Value::Bool(true)),
    ])
}

const RC: [&str; 7] = ["孙立", "马丽", "朱军", "胡静", "郭强", "何平", "高峰"];
const RC_ELECTED: [&str; 5] = ["孙立", "马丽", "朱军", "胡静", "郭强"];

/// The residents' committee up to its formal candidates, on 04-20, with 3000 voters registered.
fn residents_until_vote(s: &mut Simulation) {
    residents_until_vote_with(s, 3000);
}

/// The same with `voters` registered at 选民登记 (R2.20: the number the vote counts against).
fn residents_until_vote_with(s: &mut Simulation, voters: i64) {
    s.advance_to("2012-04-20 10:00").unwrap();
    s.act("社区居委会", &r("推选成员代表"), representatives(55, 6)).unwrap();
    s.act("居民代表会议", &r("推选选举委员会"), form(&[("选举委员会人数", int(7))])).unwrap();
    s.act("社区居民选举委员会", &r("起草选举办法"), done("选举办法草案")).unwrap();
    s.act("居民代表会议", &r("通过选举办法"), approve()).unwrap();
    s.act("社区居民选举委员会", &r("选民登记"), form(&[("登记选民人数", int(voters))])).unwrap();
    s.act("社区居民选举委员会", &r("候选人提名"), candidate()).unwrap();
    for role in ["街道选举领导小组", "社区党组织", "居民代表会议"] {
        s.act(role, &r("候选人审查"), approve()).unwrap();
    }
    s.act("社区居民选举委员会", &r("确定正式候选人"), form(&[("正式候选人名单", names(&RC[..6]))])).unwrap();
    s.act("社区居民选举委员会", &r("介绍候选人"), done("张榜介绍候选人")).unwrap();
}

/// The vote of a residents' committee of 5 seats on `day`, and its results filed and certified.
fn residents_vote(s: &mut Simulation, day: &str) {
    s.advance_to(&format!("{day} 10:00")).unwrap();
    let tallies = [("孙立", 2000), ("马丽", 1900), ("朱军", 1800), ("胡静", 1700), ("郭强", 1300), ("何平", 900)];
    s.act("社区居民选举委员会", &r("投票选举"), ballots(2600, 2500, 20, &tallies)).unwrap();
    s.act(
        "社区居民选举委员会",
        &r("公布选举结果"),
        form(&[("当选人名单", names(&RC_ELECTED)), ("男性成员人数", int(3))]),
    )
    .unwrap();
    s.act("街道选举领导小组", &r("报领导小组备案"), file()).unwrap();
    s.act("区民政局", &r("报民政局备案"), file()).unwrap();
    s.act("社区居民选举委员会", &r("颁发当选证书"), form(&[("当选人名单", names(&RC_ELECTED))])).unwrap();
}

const OC: [&str; 8] = ["罗成", "梁红", "宋佳", "谢明", "唐亮", "韩雪", "冯刚", "曹颖"];

fn oversight(s: &mut Simulation, at_: &str) {
    s.advance_to(at_).unwrap();
    s.act("社区居民选举委员会", &o("选举准备"), done("调查摸底、培训骨干")).unwrap();
    s.act("社区居民选举委员会", &o("选举宣传"), done("宣传")).unwrap();
    s.act("社区居民选举委员会", &o("监督委员候选人资格"), oversight_nominee(&[])).unwrap();
    s.act("社区居民选举委员会", &o("提名监督委员候选人"), form(&[("候选人名单", names(&OC))])).unwrap();
    // R2.20: the 61 member representatives chosen at 推选成员代表 (55 + 6) elect.
    let tallies: Vec<(&str, u64)> = OC.iter().zip([50, 48, 46, 44, 40, 36, 30, 12]).map(|(n, v)| (*n, v)).collect();
    s.act("社区居民选举委员会", &o("选举监督委员会"), ballots(58, 56, 1, &tallies)).unwrap();
    s.act("社区居民选举委员会", &o("公布监督委员会选举结果"), done("公布")).unwrap();
}

fn handed_over(seal: bool, files: bool) -> Action {
    form(&[("公章已交接", Value::Bool(seal)), ("档案已交接", Value::Bool(files))])
}

/// 总结完善 from 05-21.
fn summary(s: &mut Simulation) {
    s.advance_to("2012-05-21 10:00").unwrap();
    s.act("社区居委会", "总结完善/健全组织体系", done("成立下属委员会")).unwrap();
    s.act("社区居委会", "总结完善/完善自治制度", done("修订居民公约")).unwrap();
    s.advance_to("2012-05-25 10:00").unwrap();
    s.act("社区党组织", "总结完善/总结报告", form(&[("总结报告", text("换届工作总结"))])).unwrap();
    s.act("街道选举领导小组", "总结完善/专项检查", done("检查合格")).unwrap();
}

pub(super) fn elected(s: &Simulation, node: &str) -> Vec<String> {
    s.state.nodes[node].vote.as_ref().unwrap().elected.clone()
}

fn closed(s: &Simulation, node: &str) -> String {
    local(s.state.nodes[node].closed_at.unwrap())
}

#[test]
fn r2_2_happy_path_2012_from_preparation_to_the_summary() {
    let mut s = begin(Setup::default());
    assert_eq!(s.state.params["开始"], civicflow_engine::sim::date("2012-03-21"));
    prep(&mut s);
    nominate(&mut s, 5);
    party_vote(&mut s);
    residents_until_vote(&mut s);
    residents_vote(&mut s, "2012-04-27");
    oversight(&mut s, "2012-05-03 10:00");
    // R2.2: the handover within 10 days of 04-27, when the residents' committee was formed.
    assert_eq!(due(&s, "工作交接").as_deref(), Some("2012-05-08 00:00"));
    s.advance_to("2012-05-04 10:00").unwrap();
    s.act("社区党组织", "工作交接", handed_over(true, true)).unwrap();
    assert_eq!(s.state.status, Status::Running, "总结完善 is still ahead");
    summary(&mut s);

    assert_eq!(s.state.status, Status::Completed);
    // R2.2: the three phases and their windows.
    assert_eq!(window(&s, "选前准备"), Some(("2012-03-21 00:00".into(), "2012-04-01 00:00".into())));
    assert_eq!(window(&s, "正式选举"), Some(("2012-04-01 00:00".into(), "2012-05-21 00:00".into())));
    assert_eq!(window(&s, "总结完善"), Some(("2012-05-21 00:00".into(), "2012-06-05 00:00".into())));
    // R2.1: party organisation, then residents' committee, then oversight committee.
    assert_eq!(closed(&s, PARTY), "2012-04-19 10:00");
    assert_eq!(closed(&s, RESIDENTS), "2012-04-27 10:00");
    assert_eq!(closed(&s, OVERSIGHT), "2012-05-03 10:00");
    assert_eq!(closed(&s, "正式选举"), "2012-05-03 10:00");
    // The elected, exactly.
    assert_eq!(elected(&s, &p("差额选举委员")), ["王建国", "李红梅", "张志强", "刘芳", "陈伟"]);
    assert_eq!(elected(&s, &p("等额选举书记副书记")), ["王建国", "李红梅"]);
    assert_eq!(elected(&s, &r("投票选举")), RC_ELECTED);
    assert_eq!(elected(&s, &o("选举监督委员会")), OC[..7]);
    // R2.18: members filed, secretary and deputy approved, results filed twice.
    assert_eq!(s.state.nodes[&p("委员备案")].outcome, Some(Outcome::Filed));
    assert_eq!(s.state.nodes[&p("书记副书记批准")].outcome, Some(Outcome::Approved));
    assert_eq!(s.state.nodes[&r("报领导小组备案")].outcome, Some(Outcome::Filed));
    assert_eq!(s.state.nodes[&r("报民政局备案")].outcome, Some(Outcome::Filed));
    // Deadlines of the party procedure count from 04-01, when 正式选举 may be acted on.
    assert_eq!(due(&s, &p("公开推荐")).as_deref(), Some("2012-04-12 00:00"));
    assert_eq!(due(&s, PARTY).as_deref(), Some("2012-05-01 00:00"));
    assert_eq!(timer_events(&s), vec![], "nothing was late");
    assert_eq!(
        s.history.last().map(|(e, t)| (e.clone(), local(*t))),
        Some((Event::InstanceCompleted, "2012-05-25 10:00".into()))
    );
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r2_1_party_organisation_then_residents_committee_then_oversight_committee() {
    let mut s = begin(Setup::default());
    prep(&mut s);
    // The elections belong to 正式选举, from 04-01.
    s.advance_to("2012-03-28 10:00").unwrap();
    let e = s.act("社区党组织", &p("公开推荐"), nomination(&[])).unwrap_err();
    assert_eq!(e, Refusal::WindowNotOpen { node: p("公开推荐"), opens: "2012-04-01 00:00 +08:00".into() });
    nominate(&mut s, 5);
    let e = s.act("社区居委会", &r("推选成员代表"), representatives(55, 6)).unwrap_err();
    assert_eq!(e.code(), "F005");
    assert_eq!(
        e.to_string(),
        "step `正式选举/居委会换届/推选成员代表` is waiting for earlier steps, not open for action"
    );
    party_vote(&mut s);
    assert_eq!(s.status_of(PARTY), Some(NodeStatus::Done));
    assert_eq!(s.status_of(&r("推选成员代表")), Some(NodeStatus::Open));
    let e = s.act("社区居民选举委员会", &o("选举准备"), done("准备")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "step `正式选举/监督委员会换届/选举准备` is waiting for earlier steps, not open for action"
    );
    let e = s.act("社区党组织", "工作交接", handed_over(true, true)).unwrap_err();
    assert_eq!(e.code(), "F005", "the handover waits for both committees");
    residents_until_vote(&mut s);
    residents_vote(&mut s, "2012-04-27");
    assert_eq!(s.status_of(&o("选举准备")), Some(NodeStatus::Open));
    assert_eq!(s.status_of("工作交接"), Some(NodeStatus::Open));
}

#[test]
fn r2_2_handover_due_ten_days_after_the_committees_are_formed() {
    let mut s = begin(Setup::default());
    prep(&mut s);
    nominate(&mut s, 5);
    party_vote(&mut s);
    residents_until_vote(&mut s);
    residents_vote(&mut s, "2012-04-20");
    assert_eq!(closed(&s, RESIDENTS), "2012-04-20 10:00");
    // 04-20 + 10 days is 04-30, a holiday (劳动节 04-29 … 05-01): rolled to 05-02.
    assert_eq!(s.state.nodes["工作交接"].due_at, Some(at("2012-05-03 00:00")));
    let before = s.history.len();
    s.advance_to("2012-05-04 09:00").unwrap();
    let due_at = at("2012-05-03 00:00");
    assert_eq!(
        s.history[before..].to_vec(),
        vec![
            (Event::Reminded { node: "工作交接".into(), due_at }, at("2012-04-30 00:00")),
            (Event::Overdue { node: "工作交接".into(), due_at }, due_at),
            (Event::Escalated { node: "工作交接".into(), role: "街道党工委".into(), due_at }, due_at),
        ]
    );
    let e = s.act("社区党组织", "工作交接", handed_over(true, false)).unwrap_err();
    assert_eq!(e.to_string(), "step `工作交接`: 须完成公章、档案等交接手续");
    s.act("社区党组织", "工作交接", handed_over(true, true)).unwrap();
    assert!(s.state.nodes["工作交接"].overdue);
    assert_eq!(s.replayed(), s.state);
}

fn plan_with(x: Setup) -> Result<Simulation, Refusal> {
    let mut s = begin(x);
    s.act("街道党工委", "选前准备/成立工作机构", done("成立")).unwrap();
    s.act("街道选举领导小组", "选前准备/制定工作方案", form(&[("方案", text("方案"))]))?;
    Ok(s)
}

pub(super) fn value(s: &Simulation, name: &str) -> String {
    s.state.values[name].to_string()
}

#[test]
fn r2_4_party_organisation_size_at_50_51_99_100_members() {
    let cases = [
        (50, "党支部", "3", "5", "1"),
        (51, "党总支", "5", "7", "2"),
        (99, "党总支", "5", "7", "2"),
        (100, "党委", "7", "9", "2"),
    ];
    for (members, kind, low, high, chiefs) in cases {
        let x = Setup { members, party_seats: 5, ..Setup::default() };
        let s = plan_with(Setup { party_seats: if members == 100 { 7 } else { 5 }, ..x }).unwrap();
        let got = (
            value(&s, "党组织类型"),
            value(&s, "党组织职数下限"),
            value(&s, "党组织职数上限"),
            value(&s, "书记副书记职数"),
        );
        assert_eq!(got, (kind.into(), low.into(), high.into(), chiefs.into()), "{members} members");
    }
    // Seats outside the band are refused by the work plan.
    let msg = "step `选前准备/制定工作方案`: R2.4 党组织委员职数不在职数范围内:党员50人以下(党支部)3至5人,51至99人(党总支)5至7人,100人以上(党委)7至9人";
    let e = plan_with(Setup { members: 50, party_seats: 6, ..Setup::default() }).err().unwrap();
    assert_eq!(e.to_string(), msg);
    plan_with(Setup { members: 51, party_seats: 6, ..Setup::default() }).unwrap();
    let e = plan_with(Setup { members: 99, party_seats: 8, ..Setup::default() }).err().unwrap();
    assert_eq!(e.to_string(), msg);
    let e = plan_with(Setup { members: 100, party_seats: 6, ..Setup::default() }).err().unwrap();
    assert_eq!(e.to_string(), msg);
    plan_with(Setup { members: 100, party_seats: 9, ..Setup::default() }).unwrap();
}

#[test]
fn r2_5_residents_committee_size_at_2500_2501_4999_5000_households() {
    for (households, low, high) in [(2500, "3", "5"), (2501, "5", "7"), (4999, "5", "7"), (5000, "7", "9")] {
        let s = plan_with(Setup { households, rc_seats: low.parse().unwrap(), ..Setup::default() }).unwrap();
        assert_eq!((value(&s, "居委会职数下限"), value(&s, "居委会职数上限")), (low.into(), high.into()));
    }
    let msg = "step `选前准备/制定工作方案`: R2.5 居委会成员职数不在职数范围内:2500户以下3至5人,2501至4999户5至7人,5000户以上7至9人";
    let e = plan_with(Setup { households: 2500, rc_seats: 6, ..Setup::default() }).err().unwrap();
    assert_eq!(e.to_string(), msg);
    let e = plan_with(Setup { households: 2501, rc_seats: 4, ..Setup::default() }).err().unwrap();
    assert_eq!(e.to_string(), msg);
    plan_with(Setup { households: 2501, rc_seats: 5, ..Setup::default() }).unwrap();
    let e = plan_with(Setup { households: 5000, rc_seats: 6, ..Setup::default() }).err().unwrap();
    assert_eq!(e.to_string(), msg);
}

/// An instance at the residents' committee's first step.
fn at_representatives(x: Setup) -> Simulation {
    let mut s = begin(x);
    prep(&mut s);
    nominate(&mut s, x.party_seats);
    party_vote(&mut s);
    s.advance_to("2012-04-20 10:00").unwrap();
    s
}

#[test]
fn r2_6_resident_representatives_at_1500_1599_1600_2750_households() {
    for (households, reps) in [(1500, "50"), (1599, "50"), (1600, "51"), (2750, "62")] {
        let s = begin(Setup { households, ..Setup::default() });
        assert_eq!(value(&s, "居民代表下限"), reps, "{households} households");
    }
    let mut s = at_representatives(Setup { households: 2750, ..Setup::default() });
    let e = s.act("社区居委会", &r("推选成员代表"), representatives(61, 6)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "step `正式选举/居委会换届/推选成员代表`: R2.6 居民代表不少于规定名额:1500户以下不少于50名,1500户以上每满100户增加1名"
    );
    s.act("社区居委会", &r("推选成员代表"), representatives(62, 6)).unwrap();
    assert_eq!(s.state.nodes[&r("推选成员代表")].form.as_ref().unwrap()["居民代表人数"], int(62));
}

#[test]
fn r2_7_unit_representatives_between_ten_and_thirty_percent() {
    for (units, low, high) in [(20, "2", "6"), (25, "3", "7"), (3, "1", "1")] {
        let s = begin(Setup { units, ..Setup::default() });
        assert_eq!((value(&s, "单位代表下限"), value(&s, "单位代表上限")), (low.into(), high.into()), "{units} units");
    }
    let range = "step `正式选举/居委会换届/推选成员代表`: R2.7 单位代表按驻社区单位数的10%至30%确定";
    let mut s = at_representatives(Setup::default());
    assert_eq!(s.act("社区居委会", &r("推选成员代表"), representatives(55, 1)).unwrap_err().to_string(), range);
    assert_eq!(s.act("社区居委会", &r("推选成员代表"), representatives(55, 7)).unwrap_err().to_string(), range);
    s.act("社区居委会", &r("推选成员代表"), representatives(55, 2)).unwrap();
    // At most 30 % of all member representatives: 30 of 100 is allowed, 30 of 99 is not.
    let mut s = at_representatives(Setup { units: 100, ..Setup::default() });
    let e = s.act("社区居委会", &r("推选成员代表"), representatives(69, 30)).unwrap_err();
    assert_eq!(e.to_string(), "step `正式选举/居委会换届/推选成员代表`: R2.7 单位代表不超过社区成员代表总数的30%");
    s.act("社区居委会", &r("推选成员代表"), representatives(70, 30)).unwrap();
}

#[test]
fn r2_8_and_r2_13_a_nomination_breaking_a_rule_is_refused_with_its_words() {
    let mut s = begin(Setup::default());
    prep(&mut s);
    s.advance_to("2012-04-01 09:00").unwrap();
    let node = p("公开推荐");
    let cases: [(&[(&str, Value)], &str); 6] = [
        (&[("联名党员人数", int(9)), ("联名居民人数", int(49))], "R2.8 联名推荐须有10名以上党员或50名以上居民群众联名"),
        (&[("本人同意", Value::Bool(false))], "R2.8 党员群众联名推荐须征得被推荐人本人同意"),
        (
            &[("受过刑事处罚", Value::Bool(true)), ("刑满已满年数", int(4))],
            "R2.13 被判处刑罚或者刑满释放(或缓刑期满)未满5年的,不能选为社区组织成员",
        ),
        (&[("推荐岗位", text("书记")), ("年龄", int(56))], "R2.13 主要负责人原则上不超过55岁,其他成员原则上不超过50岁"),
        (&[("年龄", int(51))], "R2.13 主要负责人原则上不超过55岁,其他成员原则上不超过50岁"),
        (&[("新进人员", Value::Bool(true)), ("年龄", int(41))], "R2.13 新进人员一般不超过40岁"),
    ];
    for (changes, message) in cases {
        let e = s.act("社区党组织", &node, nomination(changes)).unwrap_err();
        assert_eq!(e.to_string(), format!("step `{node}`: {message}"));
    }
    // At the boundaries: 10 party members (or 50 residents), 5 full years, a secretary of 55.
    s.act(
        "社区党组织",
        &node,
        nomination(&[
            ("联名党员人数", int(0)),
            ("联名居民人数", int(50)),
            ("受过刑事处罚", Value::Bool(true)),
            ("刑满已满年数", int(5)),
            ("推荐岗位", text("书记")),
            ("年龄", int(55)),
        ]),
    )
    .unwrap();
    assert_eq!(s.status_of(&p("资格审查")), Some(NodeStatus::Open));
}

#[test]
fn r2_9_qualification_review_then_a_notice_an_objection_reopens_the_review() {
    let mut s = begin(Setup::default());
    prep(&mut s);
    s.advance_to("2012-04-01 09:00").unwrap();
    s.act("社区党组织", &p("公开推荐"), nomination(&[])).unwrap();
    s.act("街道党工委", &p("资格审查"), reject("推荐材料不全")).unwrap();
    assert_eq!(s.status_of(&p("公开推荐")), Some(NodeStatus::Open));
    s.advance_to("2012-04-05 10:00").unwrap();
    s.act("社区党组织", &p("公开推荐"), nomination(&[])).unwrap();
    s.act("街道党工委", &p("资格审查"), approve()).unwrap();
    // R0.1: 04-05 10:00 is DOMAIN.md's own example: 04-06, 04-07, 04-08, so 04-09 00:00 (this
    // test read 04-08 10:00 before periods were counted as the law counts them).
    assert_eq!(s.state.nodes[&p("资格公示")].min_until, Some(at("2012-04-09 00:00")));
    s.advance_to("2012-04-06 10:00").unwrap();
    s.act("居民代表会议", &p("资格公示"), Action::RaiseObjection { objection: "被推荐人年龄不符".into() }).unwrap();
    assert_eq!(s.status_of(&p("资格审查")), Some(NodeStatus::Open));
    assert_eq!(s.status_of(&p("资格公示")), Some(NodeStatus::Waiting));
    s.act("街道党工委", &p("资格审查"), approve()).unwrap();
    // The notice runs 3 full days again from 04-06 10:00: 04-07, 04-08, 04-09, so 04-10 00:00
    // (it read 04-09 10:00 before).
    s.advance_to("2012-04-09 23:59").unwrap();
    assert_eq!(s.status_of(&p("资格公示")), Some(NodeStatus::Open));
    s.advance_to("2012-04-10 00:00").unwrap();
    assert_eq!(s.status_of(&p("资格公示")), Some(NodeStatus::Done));
    assert_eq!(s.status_of(&p("民主推荐会")), Some(NodeStatus::Open));
}

#[test]
fn r2_10_the_recommendation_meeting_at_80_attendees_30_percent_and_1500_characters() {
    let mut s = begin(Setup::default());
    prep(&mut s);
    s.advance_to("2012-04-01 09:00").unwrap();
    s.act("社区党组织", &p("公开推荐"), nomination(&[])).unwrap();
    s.act("街道党工委", &p("资格审查"), approve()).unwrap();
    s.advance_to("2012-04-05 09:00").unwrap();
    let node = p("民主推荐会");
    let e = |s: &mut Simulation, a: Action| s.act("街道党工委", &node, a).unwrap_err().to_string();
    assert_eq!(
        e(&mut s, meeting_record(79, 40, 1000)),
        format!("step `{node}`: R2.10 参加推荐会的人数原则上不少于80人")
    );
    assert_eq!(
        e(&mut s, meeting_record(80, 23, 1000)),
        format!("step `{node}`: R2.10 人大代表、政协委员和居民群众代表不少于参会人数的30%")
    );
    assert_eq!(
        e(&mut s, meeting_record(80, 24, 1501)),
        format!("step `{node}`: R2.10 被提名人的书面介绍材料不超过1500字")
    );
    s.act("街道党工委", &node, meeting_record(80, 24, 1500)).unwrap();
}

#[test]
fn r2_11_initial_list_of_seven_for_five_seats_refused_at_six() {
    let mut s = begin(Setup::default());
    prep(&mut s);
    s.advance_to("2012-04-01 09:00").unwrap();
    s.act("社区党组织", &p("公开推荐"), nomination(&[])).unwrap();
    s.act("街道党工委", &p("资格审查"), approve()).unwrap();
    s.advance_to("2012-04-05 09:00").unwrap();
    s.act("街道党工委", &p("民主推荐会"), meeting_record(100, 30, 1500)).unwrap();
    assert_eq!(s.state.values[&p("初步人选下限")], int(7));
    let node = p("确定初步人选");
    let e = s.act("社区党组织", &node, form(&[("初步人选名单", names(&POOL[..6]))])).unwrap_err();
    assert_eq!(e.to_string(), format!("step `{node}`: R2.11 初步人选须超出委员职数30%(不少于职数的13/10,向上取整)"));
    s.act("社区党组织", &node, form(&[("初步人选名单", names(&POOL[..7]))])).unwrap();
    // The inspection candidates are publicised for at least 3 days: the slate waits for it.
    s.act("街道党工委", &p("组织考察"), done("考察")).unwrap();
    // R0.1: published 04-05 09:00, the notice runs 04-06, 04-07, 04-08 and ends at 04-09 00:00
    // (this test read 04-08 09:00 before periods were counted as the law counts them).
    assert_eq!(s.state.nodes[&p("考察对象公示期")].min_until, Some(at("2012-04-09 00:00")));
    assert_eq!(s.status_of(&p("确定预备人选")), Some(NodeStatus::Waiting));
    s.advance_to("2012-04-08 23:59").unwrap();
    assert_eq!(s.status_of(&p("确定预备人选")), Some(NodeStatus::Waiting));
    s.advance_to("2012-04-09 00:00").unwrap();
    assert_eq!(s.status_of(&p("考察对象公示期")), Some(NodeStatus::Done));
    assert_eq!(s.status_of(&p("确定预备人选")), Some(NodeStatus::Open));
}

#[test]
fn r2_11_and_r2_12_slates_for_a_committee_of_seven_ten_then_nine() {
    let mut s = begin(Setup { members: 100, party_seats: 7, ..Setup::default() });
    prep(&mut s);
    nominate(&mut s, 7);
    assert_eq!(s.state.values[&p("初步人选下限")], int(10));
    assert_eq!(s.state.values[&p("预备人选下限")], int(9));
    assert_eq!(s.state.nodes[&p("确定预备人选")].form.as_ref().unwrap()["预备人选名单"], names(&POOL[..9]));
}

#[test]
fn r2_12_final_slate_of_six_for_five_seats_refused_at_five_and_approved_before_the_vote() {
    let mut s = begin(Setup::default());
    prep(&mut s);
    s.advance_to("2012-04-01 09:00").unwrap();
    s.act("社区党组织", &p("公开推荐"), nomination(&[])).unwrap();
    s.act("街道党工委", &p("资格审查"), approve()).unwrap();
    s.advance_to("2012-04-05 09:00").unwrap();
    s.act("街道党工委", &p("民主推荐会"), meeting_record(100, 30, 1500)).unwrap();
    s.act("社区党组织", &p("确定初步人选"), form(&[("初步人选名单", names(&POOL[..7]))])).unwrap();
    s.act("街道党工委", &p("组织考察"), done("考察")).unwrap();
    s.advance_to("2012-04-09 09:00").unwrap();
    let node = p("确定预备人选");
    let e = s.act("社区党组织", &node, form(&[("预备人选名单", names(&POOL[..5]))])).unwrap_err();
    assert_eq!(e.to_string(), format!("step `{node}`: R2.12 候选人预备人选差额不少于20%(不少于职数的6/5,向上取整)"));
    s.act("社区党组织", &node, form(&[("预备人选名单", names(&POOL[..6]))])).unwrap();
    // The vote waits for 街道党工委's approval; a rejection sends the slate back.
    let six = [("王建国", 50), ("李红梅", 48), ("张志强", 45), ("刘芳", 40), ("陈伟", 30), ("杨帆", 20)];
    assert_eq!(s.act("社区党组织", &p("差额选举委员"), ballots(55, 55, 0, &six)).unwrap_err().code(), "F005");
    s.act("街道党工委", &p("预备人选审批"), reject("差额人选结构不合理")).unwrap();
    assert_eq!(s.status_of(&node), Some(NodeStatus::Open));
    s.act("社区党组织", &node, form(&[("预备人选名单", names(&POOL[..6]))])).unwrap();
    s.act("街道党工委", &p("预备人选审批"), approve()).unwrap();
    // The vote's own slate rule: at least ceil(5 × 6/5) = 6 candidates.
    let e = s.act("社区党组织", &p("差额选举委员"), ballots(55, 55, 0, &six[..5])).unwrap_err();
    assert_eq!(e.code(), "F015");
    assert_eq!(
        e.to_string(),
        "vote `正式选举/党组织换届/差额选举委员`: R2.12 候选人数应多于应选人数的20% (the slate must satisfy `candidates >= ceil(seats * 6 / 5)`; 5 candidates for 5 seats)"
    );
    s.act("社区党组织", &p("差额选举委员"), ballots(55, 55, 0, &six)).unwrap();
}

#[test]
fn r2_14_quorum_80_of_100_refused() {
    let mut s = begin(Setup { members: 100, party_seats: 7, ..Setup::default() });
    prep(&mut s);
    nominate(&mut s, 7);
    s.advance_to("2012-04-18 10:00").unwrap();
    let tallies: Vec<(&str, u64)> =
        POOL[..9].iter().zip([70, 66, 60, 55, 50, 45, 41, 40, 10]).map(|(n, v)| (*n, v)).collect();
    let before = s.history.len();
    let e = s.act("社区党组织", &p("差额选举委员"), ballots(80, 80, 0, &tallies)).unwrap_err();
    assert_eq!(e.code(), "F014");
    assert_eq!(
        e.to_string(),
        "vote `正式选举/党组织换届/差额选举委员` is not valid: R2.14 到会党员须超过应到会党员的五分之四,选举方为有效 (the quorum is `present > 4 / 5 * eligible`; 80 present and 80 ballots cast of 100 entitled; at least 81 present needed)"
    );
    assert_eq!(s.history.len(), before, "a refused vote records nothing");
}

#[test]
fn r2_14_quorum_81_of_100_accepted() {
    let mut s = begin(Setup { members: 100, party_seats: 7, ..Setup::default() });
    prep(&mut s);
    nominate(&mut s, 7);
    s.advance_to("2012-04-18 10:00").unwrap();
    // Elected with more than half of the 81 present: 41 votes elect, 40 do not.
    let tallies: Vec<(&str, u64)> =
        POOL[..9].iter().zip([70, 66, 60, 55, 50, 45, 41, 40, 10]).map(|(n, v)| (*n, v)).collect();
    s.act("社区党组织", &p("差额选举委员"), ballots(81, 81, 0, &tallies)).unwrap();
    assert_eq!(elected(&s, &p("差额选举委员")), POOL[..7]);
    let vote = s.state.nodes[&p("差额选举委员")].vote.clone().unwrap();
    assert_eq!((vote.eligible, vote.seats), (100, Some(7)));
}

/// R2.15: the members first, competitively (差额, above); then the secretary and deputy by the
/// assembly, with exactly as many candidates as seats (等额): three for two seats are refused,
/// and the assembly's quorum holds for this vote too.
#[test]
fn r2_15_secretary_and_deputy_are_then_elected_non_competitively() {
    let mut s = begin(Setup { members: 100, party_seats: 7, ..Setup::default() });
    prep(&mut s);
    nominate(&mut s, 7);
    s.advance_to("2012-04-18 10:00").unwrap();
    let tallies: Vec<(&str, u64)> =
        POOL[..9].iter().zip([70, 66, 60, 55, 50, 45, 41, 40, 10]).map(|(n, v)| (*n, v)).collect();
    s.act("社区党组织", &p("差额选举委员"), ballots(81, 81, 0, &tallies)).unwrap();
    let before = s.history.len();
    let e = s
        .act(
            "社区党组织",
            &p("等额选举书记副书记"),
            ballots(81, 81, 0, &[("王建国", 70), ("李红梅", 60), ("张志强", 10)]),
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "vote `正式选举/党组织换届/等额选举书记副书记`: R2.15 书记、副书记实行等额选举,候选人数等于应选人数 (the slate must satisfy `candidates == seats`; 3 candidates for 2 seats)"
    );
    let e = s
        .act("社区党组织", &p("等额选举书记副书记"), ballots(80, 80, 0, &[("王建国", 70), ("李红梅", 60)]))
        .unwrap_err();
    assert_eq!(e.code(), "F014");
    assert_eq!(s.history.len(), before, "refused votes record nothing");
    s.act("社区党组织", &p("等额选举书记副书记"), ballots(81, 81, 0, &[("王建国", 70), ("李红梅", 60)])).unwrap();
    assert_eq!(elected(&s, &p("等额选举书记副书记")), ["王建国", "李红梅"]);
}

/// At the residents' committee's vote, with `voters` registered.
fn at_residents_vote(voters: i64) -> Simulation {
    let x = Setup { voters, ..Setup::default() };
    let mut s = at_representatives(x);
    residents_until_vote_with(&mut s, x.voters);
    s
}

#[test]
fn r2_16_250_of_500_ballots_does_not_elect_251_does() {
    let mut s = at_residents_vote(900);
    let node = r("投票选举");
    // More than half of the 900 voters must cast a ballot: 450 is not enough.
    let six = |a, b| [("孙立", 300), ("马丽", 280), ("朱军", 260), ("胡静", a), ("郭强", b), ("何平", 100)];
    let e = s.act("社区居民选举委员会", &node, ballots(460, 450, 0, &six(251, 250))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "vote `正式选举/居委会换届/投票选举` is not valid: R2.16 参加投票的选民须超过登记选民的半数,选举方为有效 (the quorum is `cast > 1 / 2 * eligible`; 460 present and 450 ballots cast of 900 entitled; at least 451 ballots needed)"
    );
    // 500 ballots cast, 10 of them invalid: they count, so 250 is not more than half, 251 is
    // (half of the 490 valid ones would be 245).
    s.act("社区居民选举委员会", &node, ballots(520, 500, 10, &six(251, 250))).unwrap();
    assert_eq!(elected(&s, &node), ["孙立", "马丽", "朱军", "胡静"]);
    let vote = s.state.nodes[&node].vote.clone().unwrap();
    assert_eq!((vote.counts.cast, vote.counts.invalid, vote.eligible, vote.seats), (500, 10, 900, Some(5)));
}

#[test]
fn r2_17_formal_candidates_one_or_two_more_than_seats() {
    let mut s = at_representatives(Setup::default());
    s.act("社区居委会", &r("推选成员代表"), representatives(55, 6)).unwrap();
    s.act("居民代表会议", &r("推选选举委员会"), form(&[("选举委员会人数", int(7))])).unwrap();
    s.act("社区居民选举委员会", &r("起草选举办法"), done("草案")).unwrap();
    s.act("居民代表会议", &r("通过选举办法"), approve()).unwrap();
    s.act("社区居民选举委员会", &r("选民登记"), form(&[("登记选民人数", int(3000))])).unwrap();
    s.act("社区居民选举委员会", &r("候选人提名"), candidate()).unwrap();
    // The review runs in order: the street's leading group, the party organisation, then the
    // representatives.
    let e = s.act("社区党组织", &r("候选人审查"), approve()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "step `正式选举/居委会换届/候选人审查` is approved in order: it is `街道选举领导小组`'s turn, not `社区党组织`'s"
    );
    for role in ["街道选举领导小组", "社区党组织", "居民代表会议"] {
        s.act(role, &r("候选人审查"), approve()).unwrap();
    }
    let node = r("确定正式候选人");
    let msg = format!("step `{node}`: R2.17 正式候选人应当多于应选名额1至2人");
    let e = s.act("社区居民选举委员会", &node, form(&[("正式候选人名单", names(&RC[..5]))])).unwrap_err();
    assert_eq!(e.to_string(), msg);
    let eight = ["孙立", "马丽", "朱军", "胡静", "郭强", "何平", "高峰", "林琳"];
    let e = s.act("社区居民选举委员会", &node, form(&[("正式候选人名单", names(&eight))])).unwrap_err();
    assert_eq!(e.to_string(), msg);
    s.act("社区居民选举委员会", &node, form(&[("正式候选人名单", names(&RC[..7]))])).unwrap();
    s.act("社区居民选举委员会", &r("介绍候选人"), done("介绍")).unwrap();
    // The vote checks the same: 8 names for 5 seats are refused.
    let tallies: Vec<(&str, u64)> = eight.iter().map(|n| (*n, 1600)).collect();
    let e = s.act("社区居民选举委员会", &r("投票选举"), ballots(2600, 2500, 0, &tallies)).unwrap_err();
    assert_eq!(e.code(), "F015");
}

#[test]
fn r2_18_filing_cannot_veto_approval_can() {
    let mut s = begin(Setup::default());
    prep(&mut s);
    nominate(&mut s, 5);
    s.advance_to("2012-04-18 10:00").unwrap();
    let six = [("王建国", 50), ("李红梅", 48), ("张志强", 45), ("刘芳", 40), ("陈伟", 30), ("杨帆", 20)];
    s.act("社区党组织", &p("差额选举委员"), ballots(55, 55, 0, &six)).unwrap();
    let node = p("委员备案");
    let e = s.act("街道党工委", &node, reject("不同意")).unwrap_err();
    assert_eq!(e.code(), "F010");
    assert_eq!(
        e.to_string(),
        "`reject` does not apply to step `正式选举/党组织换届/委员备案`, a filing step; it takes `file`, `submit_form`, `withdraw`, `delegate`, `urge`"
    );
    // The filing records the members; R2.13 (at least one man) is checked on its form.
    let e = s.act("街道党工委", &node, file()).unwrap_err();
    assert_eq!(e.code(), "F012");
    let e = s.act("街道党工委", &node, members_filed(0)).unwrap_err();
    assert_eq!(e.to_string(), format!("step `{node}`: R2.13 班子成员中至少有1名男性"));
    s.act("街道党工委", &node, members_filed(2)).unwrap();
    s.act("街道党工委", &node, file()).unwrap();
    assert_eq!(s.state.nodes[&node].outcome, Some(Outcome::Filed));
    // The secretary and deputy need approval, which can reject: back to their vote.
    s.act("社区党组织", &p("等额选举书记副书记"), ballots(55, 55, 0, &[("王建国", 52), ("李红梅", 50)])).unwrap();
    let before = s.history.len();
    s.act("街道党工委", &p("书记副书记批准"), reject("副书记人选需调整")).unwrap();
    assert_eq!(
        tail(&s, before).into_iter().map(|(k, n, _)| (k, n)).collect::<Vec<_>>(),
        [
            ("acted", p("书记副书记批准")),
            ("completed", p("书记副书记批准")),
            ("returned", p("书记副书记批准")),
            ("opened", p("等额选举书记副书记")),
        ]
    );
    assert_eq!(s.state.nodes[&p("等额选举书记副书记")].round, 1);
    assert_eq!(s.status_of(&p("张榜公布")), Some(NodeStatus::Waiting));
    s.act("社区党组织", &p("等额选举书记副书记"), ballots(55, 55, 0, &[("王建国", 52), ("张志强", 49)])).unwrap();
    s.act("街道党工委", &p("书记副书记批准"), approve()).unwrap();
    assert_eq!(elected(&s, &p("等额选举书记副书记")), ["王建国", "张志强"]);
    s.act("社区党组织", &p("张榜公布"), done("公布")).unwrap();
    assert_eq!(s.status_of(PARTY), Some(NodeStatus::Done));

    // The residents' committee results are filed twice, neither can veto, both must happen.
    residents_until_vote(&mut s);
    s.advance_to("2012-04-27 10:00").unwrap();
    let tallies = [("孙立", 2000), ("马丽", 1900), ("朱军", 1800), ("胡静", 1700), ("郭强", 1300), ("何平", 900)];
    s.act("社区居民选举委员会", &r("投票选举"), ballots(2600, 2500, 20, &tallies)).unwrap();
    s.act(
        "社区居民选举委员会",
        &r("公布选举结果"),
        form(&[("当选人名单", names(&RC_ELECTED)), ("男性成员人数", int(3))]),
    )
    .unwrap();
    assert_eq!(s.act("区民政局", &r("报民政局备案"), reject("不同意")).unwrap_err().code(), "F010");
    s.act("区民政局", &r("报民政局备案"), file()).unwrap();
    s.act("社区居民选举委员会", &r("颁发当选证书"), form(&[("当选人名单", names(&RC_ELECTED))])).unwrap();
    assert_eq!(s.status_of(RESIDENTS), Some(NodeStatus::Open), "the street's filing is still due");
    // 5 working days from 04-27: 04-28 (a make-up Saturday), 05-02 … 05-07.
    assert_eq!(due(&s, &r("报领导小组备案")).as_deref(), Some("2012-05-08 00:00"));
    s.act("街道选举领导小组", &r("报领导小组备案"), file()).unwrap();
    assert_eq!(s.status_of(RESIDENTS), Some(NodeStatus::Done));
    assert_eq!(s.replayed(), s.state);
}

#[test]
fn r2_3_the_next_election_is_due_three_years_on_with_the_same_offsets() {
    let s = begin(Setup::default());
    // R2.3, R0.3: three years from the end of the formal election; the community carries over,
    // the due date becomes the next 开始, the street's election group gives the new numbers.
    let cycle = &s.program.policy.cycles[0];
    assert_eq!(cycle.every, civicflow_dsl::ir::CycleEvery::Span { n: 3, unit: civicflow_dsl::ir::RecurUnit::Years });
    assert_eq!(cycle.anchor.as_deref(), Some("正式选举"));
    assert_eq!(cycle.carry, ["社区名称"]);
    assert_eq!(cycle.dated.as_deref(), Some("开始"));
    assert_eq!(cycle.by.as_deref(), Some("街道选举领导小组"));
    // Three terms on, 2021: the same windows from the new 开始.
    let mut s = sim("election", "2021-03-22 09:00");
    s.start(&[
        ("开始", civicflow_engine::sim::date("2021-03-21")),
        ("社区名称", text("舜耕社区")),
        ("党员人数", int(60)),
        ("户数", int(2000)),
        ("单位数", int(20)),
        ("党组织席位", int(5)),
        ("居委会席位", int(5)),
        ("监督委员会席位", int(7)),
    ])
    .unwrap();
    s.act("街道党工委", "选前准备/成立工作机构", done("成立")).unwrap();
    s.act("街道选举领导小组", "选前准备/制定工作方案", form(&[("方案", text("方案"))])).unwrap();
    s.advance_to("2021-03-25 10:00").unwrap();
    s.act("街道选举领导小组", "选前准备/动员部署", form(&[])).unwrap();
    s.act("街道选举领导小组", "选前准备/集中培训", done("培训")).unwrap();
    assert_eq!(window(&s, "选前准备"), Some(("2021-03-21 00:00".into(), "2021-04-01 00:00".into())));
    assert_eq!(window(&s, "正式选举"), Some(("2021-04-01 00:00".into(), "2021-05-21 00:00".into())));
    assert_eq!(due(&s, PARTY).as_deref(), Some("2021-05-01 00:00"));
}

/// Issue 8, R2.18: the street party committee only files the elected members (备案): it cannot
/// force a new vote by sending its filing step back. Filing steps declare no return (the
/// compiler refuses one, E0305), so the return by hand is refused and nothing is recorded.
#[test]
fn r2_18_a_filing_body_cannot_return_the_election_to_a_vote() {
    let mut s = begin(Setup::default());
    prep(&mut s);
    nominate(&mut s, 5);
    s.advance_to("2012-04-18 10:00").unwrap();
    let six = [("王建国", 50), ("李红梅", 48), ("张志强", 45), ("刘芳", 40), ("陈伟", 30), ("杨帆", 20)];
    s.act("社区党组织", &p("差额选举委员"), ballots(55, 55, 0, &six)).unwrap();
    let before = s.history.len();
    let vote = p("差额选举委员");
    let node = p("委员备案");
    let e =
        s.act("街道党工委", &node, Action::ReturnTo { target: vote.clone(), reason: "重新选举".into() }).unwrap_err();
    assert_eq!(e.code(), "F030");
    assert_eq!(
        e.to_string(),
        format!(
            "role `街道党工委` may not send step `{node}` back to `{vote}`: a matter is returned only where the policy \
             allows it; a filing cannot veto (R2.18), an approved matter is not sent back to be decided again (R3.3); \
             this step allows no return"
        )
    );
    assert_eq!(s.history.len(), before, "a refused return records nothing");
    assert_eq!(s.state.nodes[&vote].outcome, Some(Outcome::Done));
    assert_eq!(s.status_of(&node), Some(NodeStatus::Open));
    // Filing is what it can do.
    s.act("街道党工委", &node, members_filed(2)).unwrap();
    s.act("街道党工委", &node, file()).unwrap();
    assert_eq!(s.state.nodes[&node].outcome, Some(Outcome::Filed));
    assert_eq!(s.replayed(), s.state);
}

/// A nominee for the oversight committee: a 45-year-old member with no exclusion.
fn oversight_nominee(changes: &[(&str, Value)]) -> Action {
    let mut fields = vec![
        ("被提名人", text("罗成")),
        ("提名岗位", text("委员")),
        ("年龄", int(45)),
        ("新进人员", Value::Bool(false)),
        ("荣誉放宽", Value::Bool(false)),
        ("受过刑事处罚", Value::Bool(false)),
        ("刑满已满年数", int(0)),
        ("受过劳教", Value::Bool(false)),
        ("解除劳教已满年数", int(0)),
        ("违反计划生育", Value::Bool(false)),
        ("计生已处理", Value::Bool(false)),
        ("计生处理已满年数", int(0)),
        ("涉黑涉恶受处理", Value::Bool(false)),
        ("涉黑涉恶处理已满年数", int(0)),
        ("具有行为能力", Value::Bool(true)),
    ];
    for (k, v) in changes {
        fields.retain(|(f, _)| f != k);
        fields.push((k, v.clone()));
    }
    form(&fields)
}

/// R2.16 with R2.20: the quorum counts the 1200 voters recorded at 选民登记 (no number is typed
/// at the start any more): 600 ballots are not more than half, 601 are.
#[test]
fn r2_20_the_residents_quorum_counts_the_voters_registered_at_registration() {
    let mut s = at_residents_vote(1200);
    let node = r("投票选举");
    let before = s.history.len();
    let six = [("孙立", 500), ("马丽", 480), ("朱军", 460), ("胡静", 440), ("郭强", 420), ("何平", 100)];
    let e = s.act("社区居民选举委员会", &node, ballots(610, 600, 0, &six)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "vote `正式选举/居委会换届/投票选举` is not valid: R2.16 参加投票的选民须超过登记选民的半数,选举方为有效 (the quorum is `cast > 1 / 2 * eligible`; 610 present and 600 ballots cast of 1200 entitled; at least 601 ballots needed)"
    );
    assert_eq!(s.history.len(), before, "a refused vote records nothing");
    s.act("社区居民选举委员会", &node, ballots(610, 601, 0, &six)).unwrap();
    let vote = s.state.nodes[&node].vote.clone().unwrap();
    assert_eq!((vote.eligible, vote.counts.cast), (1200, 601));
    assert_eq!(elected(&s, &node), RC_ELECTED);
}

/// R2.20: the oversight committee is elected by the 61 member representatives chosen at
/// 推选成员代表 (55 residents' + 6 units'), never by a number typed at the start.
#[test]
fn r2_20_the_oversight_vote_counts_the_representatives_actually_chosen() {
    let mut s = begin(Setup::default());
    prep(&mut s);
    nominate(&mut s, 5);
    party_vote(&mut s);
    residents_until_vote(&mut s);
    residents_vote(&mut s, "2012-04-27");
    s.advance_to("2012-05-03 10:00").unwrap();
    s.act("社区居民选举委员会", &o("选举准备"), done("调查摸底")).unwrap();
    s.act("社区居民选举委员会", &o("选举宣传"), done("宣传")).unwrap();
    s.act("社区居民选举委员会", &o("监督委员候选人资格"), oversight_nominee(&[])).unwrap();
    s.act("社区居民选举委员会", &o("提名监督委员候选人"), form(&[("候选人名单", names(&OC))])).unwrap();
    let node = o("选举监督委员会");
    let tallies: Vec<(&str, u64)> = OC.iter().zip([50, 48, 46, 44, 40, 36, 30, 12]).map(|(n, v)| (*n, v)).collect();
    let before = s.history.len();
    let e = s.act("社区居民选举委员会", &node, ballots(62, 60, 0, &tallies)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "vote `正式选举/监督委员会换届/选举监督委员会`: 62 present, but only 61 are entitled to vote"
    );
    let few: Vec<(&str, u64)> = OC.iter().zip([20, 19, 18, 17, 16, 15, 14, 5]).map(|(n, v)| (*n, v)).collect();
    let e = s.act("社区居民选举委员会", &node, ballots(40, 30, 0, &few)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "vote `正式选举/监督委员会换届/选举监督委员会` is not valid: R2.16 参加投票的成员代表须超过半数,选举方为有效 (the quorum is `cast > 1 / 2 * eligible`; 40 present and 30 ballots cast of 61 entitled; at least 31 ballots needed)"
    );
    assert_eq!(s.history.len(), before, "refusals record nothing");
    s.act("社区居民选举委员会", &node, ballots(58, 56, 1, &tallies)).unwrap();
    assert_eq!(s.state.nodes[&node].vote.as_ref().unwrap().eligible, 61);
    assert_eq!(elected(&s, &node), OC[..7]);
}

/// R2.12, R2.20: the party assembly's ballot is exactly the final list 街道党工委 approved; a
/// name added or left out is refused with the names, and nothing is recorded.
#[test]
fn r2_12_the_ballot_is_exactly_the_approved_final_list() {
    let mut s = begin(Setup::default());
    prep(&mut s);
    nominate(&mut s, 5);
    s.advance_to("2012-04-18 10:00").unwrap();
    let node = p("差额选举委员");
    let before = s.history.len();
    let swapped = [("王建国", 50), ("李红梅", 48), ("张志强", 45), ("刘芳", 40), ("陈伟", 30), ("孙悟空", 20)];
    let e = s.act("社区党组织", &node, ballots(55, 55, 0, &swapped)).unwrap_err();
    assert_eq!(e.code(), "F046");
    assert_eq!(
        e.to_string(),
        "vote `正式选举/党组织换届/差额选举委员`: the candidates must be exactly the approved list `正式选举/党组织换届/确定预备人选.预备人选名单`; not on the list: `孙悟空`; on the list but not on the ballot: `杨帆`"
    );
    assert_eq!(s.history.len(), before, "a refused vote records nothing");
    let six = [("王建国", 50), ("李红梅", 48), ("张志强", 45), ("刘芳", 40), ("陈伟", 30), ("杨帆", 20)];
    s.act("社区党组织", &node, ballots(55, 55, 0, &six)).unwrap();
}

/// R2.17, R2.20: the residents' ballot is exactly the formal candidates of 确定正式候选人.
#[test]
fn r2_17_the_residents_ballot_is_exactly_the_formal_candidates() {
    let mut s = at_residents_vote(3000);
    let node = r("投票选举");
    let before = s.history.len();
    let other = [("孙立", 2000), ("马丽", 1900), ("朱军", 1800), ("胡静", 1700), ("郭强", 1300), ("高峰", 900)];
    let e = s.act("社区居民选举委员会", &node, ballots(2600, 2500, 20, &other)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "vote `正式选举/居委会换届/投票选举`: the candidates must be exactly the approved list `正式选举/居委会换届/确定正式候选人.正式候选人名单`; not on the list: `高峰`; on the list but not on the ballot: `何平`"
    );
    assert_eq!(s.history.len(), before);
}

/// R2.13 for the oversight committee: the exclusions and age limits of the two committees.
#[test]
fn r2_13_the_oversight_committee_has_the_same_exclusions_and_ages() {
    let mut s = begin(Setup::default());
    prep(&mut s);
    nominate(&mut s, 5);
    party_vote(&mut s);
    residents_until_vote(&mut s);
    residents_vote(&mut s, "2012-04-27");
    s.advance_to("2012-05-03 10:00").unwrap();
    s.act("社区居民选举委员会", &o("选举准备"), done("调查摸底")).unwrap();
    s.act("社区居民选举委员会", &o("选举宣传"), done("宣传")).unwrap();
    let node = o("监督委员候选人资格");
    let before = s.history.len();
    let cases: [(&[(&str, Value)], &str); 4] = [
        (&[("年龄", int(51))], "R2.13 主要负责人原则上不超过55岁,其他成员原则上不超过50岁"),
        (&[("新进人员", Value::Bool(true)), ("年龄", int(41))], "R2.13 新进人员一般不超过40岁"),
        (
            &[("受过刑事处罚", Value::Bool(true)), ("刑满已满年数", int(4))],
            "R2.13 被判处刑罚或者刑满释放(或缓刑期满)未满5年的,不能选为社区组织成员",
        ),
        (&[("具有行为能力", Value::Bool(false))], "R2.13 丧失行为能力的,不能选为社区组织成员"),
    ];
    for (changes, words) in cases {
        let e = s.act("社区居民选举委员会", &node, oversight_nominee(changes)).unwrap_err();
        assert_eq!(e.to_string(), format!("step `{node}`: {words}"));
    }
    assert_eq!(s.history.len(), before, "refusals record nothing");
    // At the limits: a member of 50, a newcomer of 40, a director of 55.
    s.act("社区居民选举委员会", &node, oversight_nominee(&[("年龄", int(50))])).unwrap();
}
