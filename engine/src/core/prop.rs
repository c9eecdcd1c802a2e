//! Property tests of the pure core: random command sequences against small policies written here
//! (every step kind, every approval rule, fan-out, windows, deadlines, returns, guards) and against
//! the bundled ones. Every command goes through [`decide`] twice (it is pure) and what it returns is
//! checked before it is applied:
//!
//! 1. replay: the events so far, replayed — also after the JSON round trip the audit chain makes —
//!    give the state the run holds; a refused command changes nothing;
//! 2. no step completes without its rule: approval rules, filings, consultations, publicity and
//!    other minimum durations, vote quorums and counts, forms and their `require`s — checked from
//!    the events and the step's acts, independently of `rules.rs`;
//! 3. refusals record nothing; a role not in `by` (and not delegated) is refused with F006, and
//!    every act is recorded in the name of a role the step lists;
//! 4. timers: a timer fired twice does nothing the second time, a timer that is not pending or not
//!    yet due does nothing, and `pending_timers` lists timers of open nodes only.
//!
//! The sequences are generated as abstract operations (indices, seeds) and resolved against the
//! state when they run, so most acts hit open steps with entitled roles and sensible data.
//! `PROPTEST_CASES` raises the number of cases; `PROPTEST_RNG_SEED` picks other sequences (the
//! default seed is fixed, so a run is reproducible).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};
use civicflow_dsl::eval::{self, Env, EvalError};
use civicflow_dsl::ir::{self, ApprovalRule, NodeKind, RefKind, StepKind, Type};
use civicflow_dsl::value::Value;
use num_rational::BigRational;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRng, TestRunner};

use super::*;
use crate::calendar::Calendar;

/// Cases per policy, and the most operations after `Start` in one case.
const CASES: u32 = 128;
const BUNDLED_CASES: u32 = 32;
const MAX_OPS: usize = 40;

/// A role no policy has.
const OUTSIDER: &str = "路人";

// ---- the policies -----------------------------------------------------------------------------

/// Every approval rule; a form with `require`s and an optional field; `on rejected return`,
/// `on rejected end`, `on breach reject`; both branches of an outcome.
const RULES: &str = r#"
policy rules {
  role 甲
  role 乙
  role 丙
  role 丁
  step 申请: task {
    by 甲
    form {
      事由: text
      份数: int
      备注: text optional
      require 份数 >= 1 else "至少1份"
      require 事由 != "" else "须写明事由"
    }
  }
  step 会签: approval { by 甲, 乙, 丙 rule all after 申请 on rejected return 申请 approvers by 丁 from 丁, 乙 }
  step 或签: approval { by 甲, 乙 rule any after 申请 }
  step 二之三: approval { by 甲, 乙, 丙 rule 2 of 3 after 申请 due 5 workdays on breach reject approvers by 丁 from 丁 }
  step 过半: approval { by 甲, 乙, 丙 rule > 1/2 after 申请 approvers by 甲 from 丁 }
  step 三分之二: approval { by 甲, 乙, 丙, 丁 rule >= 2/3 after 申请 on rejected end }
  step 依次: approval { by 甲, 乙, 丙 rule sequence after 或签 approved form { 意见: text } }
  step 否决后: task { by 丁 after 或签 rejected }
  step 汇总: filing { by 丁 after 会签, 过半 }
}"#;

/// The other step kinds: publicity with `min` and `on objection return`, a vote, meetings with
/// and without a form, a consultation, a filing and a task with `min`, reminders, every breach
/// action, a `when` guard.
const KINDS: &str = r#"
policy kinds {
  role 社区
  role 街道
  role 居民
  role 区领导
  param 需公示: bool = true
  param 选民: int = 100
  step 提名: task { by 社区 form { 人数: int require 人数 >= 10 else "至少10人" } }
  step 审查: approval {
    by 街道
    after 提名
    due 3 workdays
    remind 1 workdays before
    on breach overdue, escalate 区领导, notify 社区
    on rejected return 提名
  }
  step 公示: publicity { by 街道 after 审查 approved when 需公示 min 3 days on objection return 审查 }
  step 征求: consultation { by 社区, 居民 after 审查 approved due 5 days on breach notify 区领导 }
  step 选举: vote {
    by 社区
    after 公示, 征求
    eligible 选民
    seats 2
    quorum present > 4/5 * eligible
    slate candidates >= seats + 1
    elect votes > 1/2 * cast
  }
  step 会议: meeting { by 社区 after 选举 form { 参会: int 纪要: text require 参会 > 0 else "须有人参会" } }
  step 座谈: meeting { by 居民 after 选举 }
  step 备案: filing { by 街道, 区领导 after 选举 min 1 days due 2 workdays on breach reject }
  step 听取意见: consultation { by 居民 after 选举 min 1 days }
  step 整改: task { by 社区 after 会议 min 2 days }
}"#;

/// Phases with windows (nested, and a step with its own), fan-out (a task with a form bound to
/// its element, a consultation), a return to a fan-out step, fixed-date and after-done deadlines.
const PHASED: &str = r#"
policy phased {
  role 领导小组
  role 工作组
  param 社区列表: list<text> = ["甲", "乙", "丙"]
  param 起始: date = 2024-05-06
  phase 调查 {
    window 起始 .. 起始 + 10 days
    step 成立: task { by 领导小组 due 3 workdays on breach overdue, notify 领导小组 }
    step 走访: task {
      by 工作组
      after 成立
      for 社区 in 社区列表
      due 5 workdays
      remind 2 workdays before
      form { 名称: text require 名称 == 社区 else "须填写本社区" }
    }
    step 意见: consultation { by 工作组 after 成立 for 社区 in 社区列表 }
    step 方案: approval { by 领导小组 after 走访, 意见 on rejected return 走访 }
  }
  phase 实施 {
    after 调查
    window 起始 + 11 days .. 起始 + 30 days
    step 执行: task { by 工作组 window 起始 + 12 days .. 起始 + 20 days due 起始 + 20 days on breach reject }
    step 复核: filing { by 领导小组 after 执行 due 5 days after 执行 roll }
    phase 收尾 {
      after 复核
      step 归档: task { by 工作组 }
    }
  }
}"#;

struct Fixture {
    name: &'static str,
    program: Program,
    /// Issue 11.5: a version 2 to migrate to — another label, and the last node dropped when
    /// nothing refers to it.
    v2: Program,
    calendar: Calendar,
    start: DateTime<Utc>,
    param_sets: Vec<BTreeMap<String, Value>>,
    /// The policy's roles and [`OUTSIDER`].
    roles: Vec<String>,
    /// Principals a step may be delegated to (and a blank name).
    delegates: Vec<String>,
    /// Pools for form data: the policy's short string and number literals, the parameters.
    texts: Vec<String>,
    ints: Vec<i64>,
}

impl Fixture {
    fn new(name: &'static str, src: &str, start: &str, param_sets: Vec<Vec<(&str, Value)>>) -> Fixture {
        let compiled = civicflow_dsl::compile(src)
            .unwrap_or_else(|d| panic!("{name}: {:?}", d.as_slice().iter().map(|x| &x.message).collect::<Vec<_>>()));
        let v2 = version_2(&compiled.policy, &compiled.hash);
        let program = Program::new(compiled.policy, compiled.hash).unwrap();
        let calendar = Calendar::chinese().unwrap();
        let naive = NaiveDateTime::parse_from_str(start, "%Y-%m-%d %H:%M").unwrap();
        let start = program.offset.from_local_datetime(&naive).single().unwrap().with_timezone(&Utc);
        let param_sets: Vec<BTreeMap<String, Value>> =
            param_sets.into_iter().map(|ps| ps.into_iter().map(|(k, v)| (k.to_string(), v)).collect()).collect();
        let mut roles: Vec<String> = program.policy.roles.iter().map(|r| r.name.clone()).collect();
        roles.push(OUTSIDER.to_string());
        let mut delegates: Vec<String> = roles.iter().flat_map(|r| [format!("{r}-1"), format!("{r}-2")]).collect();
        delegates.push(String::new());
        let (mut texts, mut ints) = literals(src);
        for v in param_sets.iter().flat_map(|ps| ps.values()) {
            collect(v, &mut texts, &mut ints);
        }
        let texts = texts.into_iter().collect();
        let ints = ints.into_iter().collect();
        Fixture { name, program, v2, calendar, start, param_sets, roles, delegates, texts, ints }
    }
}

/// Issue 11.5: the policy as a version 2 — another label; its last node dropped (with the edges and
/// timers that name it) when no other node refers to it.
fn version_2(policy: &ir::Policy, hash: &str) -> Program {
    let mut v2 = policy.clone();
    v2.version = Some("v2".into());
    if let Some((last, others)) = v2.nodes.split_last() {
        let quoted = format!("\"{}\"", last.id);
        let referred = serde_json::to_string(others).unwrap_or_default().contains(&quoted)
            || serde_json::to_string(&v2.values).unwrap_or_default().contains(&quoted);
        if !referred {
            let id = last.id.clone();
            v2.nodes.retain(|n| n.id != id);
            v2.edges.retain(|e| !serde_json::to_string(e).unwrap_or_default().contains(&quoted));
            v2.timers.retain(|t| !serde_json::to_string(t).unwrap_or_default().contains(&quoted));
        }
    }
    Program::new(v2, format!("{hash}-v2")).unwrap()
}

/// Short string literals and the numbers (and their neighbours) written in a policy.
fn literals(src: &str) -> (BTreeSet<String>, BTreeSet<i64>) {
    let mut texts = BTreeSet::from([String::new(), "甲".to_string()]);
    let mut ints = BTreeSet::from([0, 1, 2, 3, 5, 10, 50, 100]);
    for line in src.lines() {
        let code = line.split("//").next().unwrap_or("");
        if !code.contains("\"\"\"") {
            for (i, part) in code.split('"').enumerate() {
                if i % 2 == 1 && part.chars().count() <= 8 {
                    texts.insert(part.to_string());
                }
            }
        }
        for word in code.split(|c: char| !c.is_ascii_digit()) {
            if let Ok(n) = word.parse::<i64>() {
                if n <= 100_000 {
                    ints.extend([n - 1, n, n + 1]);
                }
            }
        }
    }
    (texts, ints)
}

fn collect(v: &Value, texts: &mut BTreeSet<String>, ints: &mut BTreeSet<i64>) {
    match v {
        Value::Text(t) => {
            texts.insert(t.clone());
        }
        Value::Number(_) => {
            if let Some(n) = v.as_i64() {
                ints.extend([n - 1, n, n + 1]);
            }
        }
        Value::List(items) => items.iter().for_each(|i| collect(i, texts, ints)),
        Value::Record(fields) => fields.values().for_each(|i| collect(i, texts, ints)),
        _ => {}
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn texts(items: &[&str]) -> Value {
    Value::List(items.iter().map(|s| text(s)).collect())
}

fn date(s: &str) -> Value {
    Value::Date(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap())
}

fn small_policies() -> Vec<Fixture> {
    vec![
        Fixture::new("rules", RULES, "2024-05-06 09:00", vec![vec![]]),
        Fixture::new(
            "kinds",
            KINDS,
            "2024-05-06 09:00",
            vec![vec![], vec![("需公示", Value::Bool(false)), ("选民", Value::int(9))]],
        ),
        Fixture::new(
            "phased",
            PHASED,
            "2024-05-06 09:00",
            vec![
                vec![],
                vec![("社区列表", texts(&["东", "西"])), ("起始", date("2024-05-07"))],
                vec![("社区列表", texts(&[]))],
            ],
        ),
    ]
}

fn bundled(name: &str) -> Fixture {
    match name {
        "reform_pilot" => Fixture::new(
            "reform_pilot",
            include_str!("../../../policies/reform_pilot.cf"),
            "2008-01-02 09:00",
            vec![vec![], vec![("社区列表", texts(&["一社区", "二社区"]))]],
        ),
        "election" => {
            let common = |members: i64, households: i64| {
                vec![
                    ("社区名称", text("舜耕")),
                    ("党员人数", Value::int(members)),
                    ("户数", Value::int(households)),
                    ("单位数", Value::int(20)),
                    ("党组织席位", Value::int(if members > 99 { 7 } else { 3 })),
                    ("居委会席位", Value::int(5)),
                    ("监督委员会席位", Value::int(7)),
                ]
            };
            Fixture::new(
                "election",
                include_str!("../../../policies/election.cf"),
                "2012-03-21 09:00",
                vec![common(120, 3000), common(40, 3000)],
            )
        }
        "community_access" => Fixture::new(
            "community_access",
            include_str!("../../../policies/community_access.cf"),
            "2024-05-06 09:00",
            vec![vec![("申请部门", text("民政局")), ("事项名称", text("低保复核")), ("社区名称", text("舜耕"))]],
        ),
        "residents_demand" => Fixture::new(
            "residents_demand",
            include_str!("../../../policies/residents_demand.cf"),
            "2024-05-06 09:00",
            vec![vec![("社区名称", text("舜耕"))], vec![("社区名称", text("舜耕")), ("诉求类别", text("征地拆迁"))]],
        ),
        "property_service" => Fixture::new(
            "property_service",
            include_str!("../../../policies/property_service.cf"),
            "2024-11-25 09:00",
            vec![
                vec![("小区名称", text("阳光")), ("物业公司名称", text("安居")), ("服务年度起始", date("2024-01-01"))],
                vec![
                    ("小区名称", text("阳光")),
                    ("物业公司名称", text("安居")),
                    ("服务年度起始", date("2024-01-01")),
                    ("新进驻", Value::Bool(true)),
                    ("涉及拆迁改建", Value::Bool(true)),
                    ("有提拔人选", Value::Bool(true)),
                ],
            ],
        ),
        other => panic!("no bundled policy {other}"),
    }
}

// ---- the generated operations -------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Script {
    params: usize,
    /// Minutes after the fixture's start instant.
    start_after: i64,
    ops: Vec<Op>,
}

#[derive(Clone, Debug)]
enum Op {
    /// What moves the procedure on: on an open step, each entitled role in turn tries what the
    /// step's kind takes until one is accepted.
    Progress(u64),
    Act {
        node: Pick,
        who: Who,
        principal: u8,
        action: Do,
    },
    /// Move the clock to the earliest pending timer and fire it.
    FireNext,
    /// Fire a pending timer now, due or not.
    FirePending(usize),
    /// Fire again a timer fired before.
    FireAgain(usize),
    /// Fire a timer made up from a node's instants.
    FireForged(usize, TimerKind),
    /// Move the clock on, firing nothing.
    Wait(i64),
    Cancel {
        blank: bool,
    },
    /// Issue 11.3: suspend (or resume) in one of the policy's roles.
    Suspend {
        role: usize,
        resume: bool,
    },
    /// Issue 11.4: correct one parameter to its value in one of the fixture's sets, in one of the
    /// policy's roles.
    Correct {
        role: usize,
        set: usize,
        param: usize,
    },
    /// Issue 11.5: move to the fixture's version 2 (once).
    Migrate,
    StartAgain,
}

#[derive(Clone, Copy, Debug)]
enum Pick {
    Open(usize),
    Any(usize),
    Unknown(usize),
}

#[derive(Clone, Copy, Debug)]
enum Who {
    /// A role the step names in `by`.
    Entitled(usize),
    /// Any role of the policy, or one it does not have.
    AnyRole(usize),
    /// A principal the step was delegated to.
    Delegate(usize),
}

#[derive(Clone, Debug)]
enum Do {
    /// What the step's kind takes, with data that may well be valid.
    Fitting(u64),
    Form(u64, Flaw),
    Complete,
    Approve,
    Reject {
        blank: bool,
    },
    File,
    Opinion,
    Vote(u64),
    Objection {
        blank: bool,
    },
    Return {
        target: usize,
        blank: bool,
    },
    Withdraw,
    Delegate(usize),
    Urge,
    /// Issue 11.1: 延期 by this much (0 and past the step's `max` too).
    Extend(u32),
    /// Issue 11.2: 转办 to one of the policy's text literals (an office name, or blank).
    Transfer(usize),
    /// Issue 11.2: 加签 (`true`) or 减签 of one of the policy's roles.
    Approver(usize, bool),
    /// Issue 11.2: 抄送 to one of the policy's text literals (an office name, or blank).
    Copy(usize),
    /// Issue 11.1: approve (`true`) or refuse an extension asked for.
    DecideExtension(bool),
    /// Issue 11.2: 已阅, the actor's office reading its copy.
    Read,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Flaw {
    None,
    Missing,
    Extra,
    WrongType,
    Empty,
}

fn op() -> impl Strategy<Value = Op> {
    let pick = prop_oneof![
        6 => (0..64usize).prop_map(Pick::Open),
        2 => (0..64usize).prop_map(Pick::Any),
        1 => (0..8usize).prop_map(Pick::Unknown),
    ];
    let who = prop_oneof![
        6 => (0..8usize).prop_map(Who::Entitled),
        2 => (0..16usize).prop_map(Who::AnyRole),
        1 => (0..8usize).prop_map(Who::Delegate),
    ];
    let flaw = prop_oneof![
        6 => Just(Flaw::None),
        1 => Just(Flaw::Missing),
        1 => Just(Flaw::Extra),
        1 => Just(Flaw::WrongType),
        1 => Just(Flaw::Empty),
    ];
    let action = prop_oneof![
        14 => any::<u64>().prop_map(Do::Fitting),
        2 => (any::<u64>(), flaw).prop_map(|(s, f)| Do::Form(s, f)),
        1 => Just(Do::Complete),
        1 => Just(Do::Approve),
        1 => any::<bool>().prop_map(|blank| Do::Reject { blank }),
        1 => Just(Do::File),
        1 => Just(Do::Opinion),
        1 => any::<u64>().prop_map(Do::Vote),
        1 => any::<bool>().prop_map(|blank| Do::Objection { blank }),
        2 => (0..64usize, any::<bool>()).prop_map(|(target, blank)| Do::Return { target, blank }),
        2 => Just(Do::Withdraw),
        2 => (0..64usize).prop_map(Do::Delegate),
        1 => Just(Do::Urge),
        1 => (0..12u32).prop_map(Do::Extend),
        1 => (0..64usize).prop_map(Do::Transfer),
        2 => (0..16usize, any::<bool>()).prop_map(|(r, add)| Do::Approver(r, add)),
        1 => (0..64usize).prop_map(Do::Copy),
        1 => any::<bool>().prop_map(Do::DecideExtension),
        1 => Just(Do::Read),
    ];
    let kind = prop_oneof![
        Just(TimerKind::Due),
        Just(TimerKind::Reminder),
        Just(TimerKind::MinDurationEnds),
        Just(TimerKind::WindowCloses),
    ];
    prop_oneof![
        20 => any::<u64>().prop_map(Op::Progress),
        20 => (pick, who, 0..2u8, action).prop_map(|(node, who, principal, action)| Op::Act { node, who, principal, action }),
        6 => Just(Op::FireNext),
        3 => (0..16usize).prop_map(Op::FirePending),
        2 => (0..16usize).prop_map(Op::FireAgain),
        2 => (0..64usize, kind).prop_map(|(n, k)| Op::FireForged(n, k)),
        3 => (0..180i64).prop_map(Op::Wait),
        3 => (1..72i64).prop_map(|h| Op::Wait(h * 60)),
        2 => (1..12i64).prop_map(|d| Op::Wait(d * 24 * 60)),
        1 => proptest::bool::weighted(0.3).prop_map(|blank| Op::Cancel { blank }),
        2 => (0..16usize, any::<bool>()).prop_map(|(role, resume)| Op::Suspend { role, resume }),
        2 => (0..16usize, 0..4usize, 0..16usize).prop_map(|(role, set, param)| Op::Correct { role, set, param }),
        1 => Just(Op::Migrate),
        1 => Just(Op::StartAgain),
    ]
}

fn script() -> impl Strategy<Value = Script> {
    (0..4usize, 0..(48 * 60i64), proptest::collection::vec(op(), MAX_OPS / 4..=MAX_OPS))
        .prop_map(|(params, start_after, ops)| Script { params, start_after, ops })
}

/// Runs `CASES` (or `PROPTEST_CASES`) scripts against the policy; the seed is fixed unless
/// `PROPTEST_RNG_SEED` is set.
fn check(fx: &Fixture, cases: u32) {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(cases);
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner = match config.rng_seed {
        RngSeed::Random => {
            let rng = TestRng::deterministic_rng(config.rng_algorithm);
            TestRunner::new_with_rng(config, rng)
        }
        RngSeed::Fixed(_) => TestRunner::new(config),
    };
    if let Err(e) = runner.run(&script(), |s| run_script(fx, &s)) {
        panic!("policy `{}`: {e}", fx.name);
    }
}

fn run_script(fx: &Fixture, script: &Script) -> Result<(), TestCaseError> {
    let mut run = Run {
        fx,
        migrated: false,
        state: State::new(),
        history: Vec::new(),
        stored: Vec::new(),
        now: fx.start + TimeDelta::minutes(script.start_after),
        fired: Vec::new(),
        open_steps: BTreeMap::new(),
    };
    let params = fx.param_sets[script.params % fx.param_sets.len()].clone();
    let started = run.send(&Command::Start { actor: actor(OUTSIDER, 1), params })?;
    prop_assert!(started.is_ok(), "policy `{}` does not start: {:?}", fx.name, started);
    for op in &script.ops {
        run.step(op)?;
    }
    Ok(())
}

fn actor(role: &str, i: u8) -> Actor {
    Actor { principal: format!("{role}-{i}"), office: role.to_string(), role: role.to_string() }
}

/// A small deterministic generator for data chosen while a script runs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// ---- a run --------------------------------------------------------------------------------------

struct Run<'f> {
    fx: &'f Fixture,
    /// Issue 11.5: the instance runs on the fixture's version 2.
    migrated: bool,
    state: State,
    history: Vec<(Event, DateTime<Utc>)>,
    /// The history as the audit chain keeps it: each event through JSON and back.
    stored: Vec<(Event, DateTime<Utc>)>,
    now: DateTime<Utc>,
    fired: Vec<Timer>,
    /// Issue 10.6: the open-step rows as a store keeps them, changed only by what each command's
    /// [`super::open_step_changes`] says.
    open_steps: BTreeMap<String, super::OpenStep>,
}

type Check = Result<(), TestCaseError>;

impl Run<'_> {
    /// The version the instance runs on.
    fn prog(&self) -> &Program {
        if self.migrated {
            &self.fx.v2
        } else {
            &self.fx.program
        }
    }

    fn ctx(&self) -> Context<'_> {
        Context { program: self.prog(), calendar: &self.fx.calendar }
    }

    /// Decides a command (twice), checks the answer, applies the events.
    fn send(&mut self, cmd: &Command) -> Result<Result<Vec<Event>, Refusal>, TestCaseError> {
        let ctx = self.ctx();
        let before = self.state.clone();
        let first = decide(ctx, &self.state, cmd, self.now);
        let second = decide(ctx, &self.state, cmd, self.now);
        prop_assert_eq!(&first, &second, "decide gave two answers to {:?}", cmd);
        // Issue 10.2: the incremental advance emits exactly what the scan emits.
        let scanned = super::decide_by_scan(ctx, &self.state, cmd, self.now);
        prop_assert_eq!(&first, &scanned, "the advance and the scan differ on {:?}", cmd);
        prop_assert_eq!(&self.state, &before);
        self.expect(cmd, &first)?;
        if let Ok(events) = &first {
            self.check_events(cmd, events)?;
            // Issue 10.2: the timer changes, from the nodes told apart, are the full scan's.
            let mut after = self.state.clone();
            for e in events {
                apply(&mut after, e, self.now);
            }
            let fx = self.fx;
            let program = if self.migrated { &fx.v2 } else { &fx.program };
            let (changed, rows) = if let Command::Migrate { .. } = cmd {
                // Issue 11.5: a migration's commit replaces every node's rows (as the runtime's).
                let whole = super::whole_changes(ctx, &self.state, &after);
                (whole.nodes, whole.open_steps)
            } else {
                prop_assert_eq!(
                    super::timer_changes(ctx, &self.state, &after),
                    super::timer_changes_by_scan(ctx, &self.state, &after),
                    "timer changes differ on {:?}",
                    cmd
                );
                // Issue 10.6: the open-step rows, changed node by node, are the state's.
                let (changed, rows) = super::open_step_changes(program, &self.state, &after);
                let scanned = super::open_steps::open_step_changes_by_scan(program, &self.state, &after);
                prop_assert_eq!((&changed, &rows), (&scanned.0, &scanned.1), "open-step changes differ on {:?}", cmd);
                (changed, rows)
            };
            for node in &changed {
                self.open_steps.remove(node);
            }
            self.open_steps.extend(rows.into_iter().map(|r| (r.node.clone(), r)));
            let all: BTreeMap<String, super::OpenStep> =
                super::open_steps(program, &after).into_iter().map(|r| (r.node.clone(), r)).collect();
            prop_assert_eq!(&self.open_steps, &all, "the open-step rows are not the state's after {:?}", cmd);
            for e in events {
                apply(&mut self.state, e, self.now);
                self.history.push((e.clone(), self.now));
                let json = serde_json::to_string(&(e, self.now)).unwrap();
                self.stored.push(serde_json::from_str(&json).unwrap());
            }
        }
        self.check_state()?;
        Ok(first)
    }

    fn step(&mut self, op: &Op) -> Check {
        match op {
            Op::Progress(seed) => self.progress(*seed),
            Op::Act { node, who, principal, action } => self.act(*node, *who, *principal, action),
            Op::FireNext => {
                let next = pending_timers(self.ctx(), &self.state).into_iter().min_by_key(|t| t.at);
                if let Some(t) = next {
                    self.now = self.now.max(t.at);
                    self.fire(t)?;
                }
                Ok(())
            }
            Op::FirePending(i) => {
                let pending = pending_timers(self.ctx(), &self.state);
                if !pending.is_empty() {
                    self.fire(pending[i % pending.len()].clone())?;
                }
                Ok(())
            }
            Op::FireAgain(i) => {
                if !self.fired.is_empty() {
                    self.fire(self.fired[i % self.fired.len()].clone())?;
                }
                Ok(())
            }
            Op::FireForged(i, kind) => {
                let keys: Vec<&String> = self.state.nodes.keys().collect();
                if keys.is_empty() {
                    return Ok(());
                }
                let key = keys[i % keys.len()].clone();
                let n = &self.state.nodes[&key];
                let at = match kind {
                    TimerKind::Due => n.due_at,
                    TimerKind::Reminder => n.due_at.map(|d| d - TimeDelta::days(1)),
                    TimerKind::MinDurationEnds => n.min_until,
                    TimerKind::WindowCloses => n.window.map(|w| w.1),
                    TimerKind::NextCycle => None,
                };
                self.fire(Timer { node: key, kind: *kind, at: at.unwrap_or(self.now) })
            }
            Op::Wait(minutes) => {
                self.now += TimeDelta::minutes(*minutes);
                Ok(())
            }
            Op::Cancel { blank } => {
                let reason = if *blank { " " } else { "撤销" };
                self.send(&Command::Cancel { actor: actor(OUTSIDER, 1), reason: reason.into() }).map(|_| ())
            }
            Op::Suspend { role, resume } => {
                let role = &self.fx.roles[role % self.fx.roles.len()];
                let actor = actor(role, 1);
                let command = if *resume {
                    Command::Resume { actor, reason: "法院裁定后恢复办理".into() }
                } else {
                    Command::Suspend { actor, reason: "等待法院裁定".into() }
                };
                self.send(&command).map(|_| ())
            }
            Op::Correct { role, set, param } => {
                let role = &self.fx.roles[role % self.fx.roles.len()];
                let set = &self.fx.param_sets[set % self.fx.param_sets.len()];
                let params: BTreeMap<String, Value> =
                    set.iter().cycle().nth(*param).into_iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                self.send(&Command::Correct {
                    actor: actor(role, 1), params, reason: "录入有误,予以更正".into()
                })
                .map(|_| ())
            }
            Op::Migrate if self.migrated => Ok(()),
            Op::Migrate => {
                let map = super::migration_map("prop-plan", &self.fx.program, &self.fx.v2, &BTreeMap::new())
                    .map_err(TestCaseError::fail)?;
                let removed: Vec<String> = map.removed.clone();
                // Acted on, the removed step keeps the instance on its version (F061).
                let lost = self.state.nodes.values().any(|n| {
                    removed.contains(&n.def)
                        && (n.status == NodeStatus::Done || !n.acts.is_empty() || n.form.is_some() || n.vote.is_some())
                });
                let running = self.state.status == Status::Running;
                self.migrated = true;
                let r = self.send(&Command::Migrate { actor: actor(OUTSIDER, 1), map })?;
                if r.is_err() {
                    self.migrated = false;
                }
                if !running {
                    prop_assert!(r.is_err(), "migrated an instance that is not running");
                } else if lost {
                    prop_assert_eq!(
                        r.as_ref().map_err(Refusal::code).err(),
                        Some("F061"),
                        "a removed step acted on was lost"
                    );
                }
                Ok(())
            }
            Op::StartAgain => {
                let params = self.fx.param_sets[0].clone();
                let r = self.send(&Command::Start { actor: actor(OUTSIDER, 1), params })?;
                prop_assert_eq!(r, Err(Refusal::AlreadyStarted));
                Ok(())
            }
        }
    }

    /// Fires a timer; if it did something, fires it again, which must do nothing.
    fn fire(&mut self, t: Timer) -> Check {
        let cmd = Command::Fire { node: t.node.clone(), kind: t.kind, at: t.at };
        let r = self.send(&cmd)?;
        self.fired.push(t);
        if r.as_ref().is_ok_and(|e| !e.is_empty()) {
            let again = self.send(&cmd)?;
            prop_assert_eq!(again, Ok(Vec::new()), "a timer fired twice acted twice: {:?}", cmd);
        }
        Ok(())
    }

    fn progress(&mut self, seed: u64) -> Check {
        let mut rng = Rng(seed);
        let open = self.open_steps();
        if open.is_empty() {
            return Ok(());
        }
        let key = rng.pick(&open).clone();
        let Some(def) = self.state.nodes.get(&key).and_then(|n| self.prog().node(&n.def)) else { return Ok(()) };
        let mut roles = def.roles.clone();
        let turn = rng.below(roles.len() as u64) as usize;
        roles.rotate_left(turn);
        for role in roles {
            let actor = actor(&role, 1 + rng.below(2) as u8);
            for action in self.actions(&key, &actor, &Do::Fitting(rng.next())) {
                let cmd = Command::Act { actor: actor.clone(), node: key.clone(), action, comment: None };
                if self.send(&cmd)?.is_ok() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Open steps one can act on (not fan-out templates), in key order.
    fn open_steps(&self) -> Vec<String> {
        self.state
            .nodes
            .iter()
            .filter(|(_, n)| {
                n.status == NodeStatus::Open
                    && self.prog().node(&n.def).is_some_and(|d| {
                        matches!(d.kind, NodeKind::Step(_)) && !(d.for_each.is_some() && n.element.is_none())
                    })
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn act(&mut self, pick: Pick, who: Who, principal: u8, what: &Do) -> Check {
        let key = self.pick_node(pick);
        let node = self.state.nodes.get(&key);
        let def = node.and_then(|n| self.prog().node(&n.def));
        let delegated: Vec<&String> = node.map(|n| n.delegations.keys().collect()).unwrap_or_default();
        let mut actor = match (who, def) {
            (Who::Entitled(i), Some(d)) if !d.roles.is_empty() => actor(&d.roles[i % d.roles.len()], 1 + principal),
            (Who::Delegate(i), _) if !delegated.is_empty() => {
                let p = delegated[i % delegated.len()].clone();
                let role = p.rsplit_once('-').map_or(OUTSIDER.to_string(), |(r, _)| r.to_string());
                Actor { principal: p, office: role.clone(), role }
            }
            (Who::Entitled(i) | Who::AnyRole(i) | Who::Delegate(i), _) => {
                actor(&self.fx.roles[i % self.fx.roles.len()], 1 + principal)
            }
        };
        // R6.1: an entitled principal or a delegate belongs to the office bound to the role.
        if !matches!(who, Who::AnyRole(_)) {
            if let Some(office) = super::bound_office(self.prog(), &self.state, &key, &actor.role) {
                actor.office = office;
            }
        }
        for action in self.actions(&key, &actor, what) {
            let cmd = Command::Act { actor: actor.clone(), node: key.clone(), action, comment: None };
            if self.send(&cmd)?.is_ok() {
                break;
            }
        }
        Ok(())
    }

    fn pick_node(&self, pick: Pick) -> String {
        let open = self.open_steps();
        let all: Vec<&String> = self.state.nodes.keys().collect();
        match pick {
            Pick::Open(i) if !open.is_empty() => open[i % open.len()].clone(),
            Pick::Open(i) | Pick::Any(i) if !all.is_empty() => all[i % all.len()].clone(),
            Pick::Open(i) | Pick::Any(i) | Pick::Unknown(i) => {
                let first = self.prog().policy.nodes.first().map_or("x", |n| n.id.as_str());
                [format!("{first}[99]"), "不存在的步骤".to_string(), format!("{first}/x")][i % 3].clone()
            }
        }
    }

    /// The action(s) to try, in order, until one is accepted.
    fn actions(&self, key: &str, actor: &Actor, what: &Do) -> Vec<Action> {
        let node = self.state.nodes.get(key);
        let def = node.and_then(|n| self.prog().node(&n.def));
        let forms = |seed: u64, flaw: Flaw| -> Vec<Action> {
            let Some(def) = def else { return vec![Action::SubmitForm { data: BTreeMap::new() }] };
            let tries = if flaw == Flaw::None { 12 } else { 1 };
            (0..tries)
                .map(|i| {
                    let mut rng = Rng(seed.wrapping_add(i));
                    Action::SubmitForm { data: self.form(key, def, &mut rng, flaw) }
                })
                .collect()
        };
        let votes = |seed: u64| -> Vec<Action> {
            (0..8).map(|i| Action::EnterVote { counts: self.counts(key, &mut Rng(seed.wrapping_add(i))) }).collect()
        };
        match what {
            Do::Fitting(seed) => {
                let mut rng = Rng(*seed);
                let Some(def) = def else { return vec![Action::Approve { comment: None }] };
                let NodeKind::Step(kind) = def.kind else { return vec![Action::Complete { report: "办结".into() }] };
                let needs_form = def.form.iter().any(|f| !f.optional) && node.is_some_and(|n| n.form.is_none());
                match kind {
                    StepKind::Task if needs_form || (!def.form.is_empty() && rng.chance(1, 2)) => {
                        forms(rng.next(), Flaw::None)
                    }
                    StepKind::Task => vec![Action::Complete { report: "办结".into() }],
                    StepKind::Meeting => forms(rng.next(), Flaw::None),
                    StepKind::Approval | StepKind::Filing if needs_form => forms(rng.next(), Flaw::None),
                    StepKind::Approval if rng.chance(1, 5) => vec![Action::Reject { reason: "不同意".into() }],
                    StepKind::Approval => vec![Action::Approve { comment: None }],
                    StepKind::Filing => vec![Action::File { comment: None }],
                    StepKind::Consultation => vec![Action::GiveOpinion { opinion: "同意".into() }],
                    StepKind::Publicity if rng.chance(1, 3) => {
                        vec![Action::RaiseObjection { objection: format!("{}有异议", actor.principal) }]
                    }
                    StepKind::Publicity => vec![Action::Urge { message: None }],
                    StepKind::Vote => votes(rng.next()),
                }
            }
            Do::Form(seed, flaw) => forms(*seed, *flaw),
            Do::Complete => vec![Action::Complete { report: "办结".into() }],
            Do::Approve => vec![Action::Approve { comment: Some("同意".into()) }],
            Do::Reject { blank } => vec![Action::Reject { reason: if *blank { "  " } else { "不同意" }.into() }],
            Do::File => vec![Action::File { comment: None }],
            Do::Opinion => vec![Action::GiveOpinion { opinion: "无意见".into() }],
            Do::Vote(seed) => votes(*seed),
            Do::Objection { blank } => {
                vec![Action::RaiseObjection { objection: if *blank { "" } else { "有异议" }.into() }]
            }
            Do::Return { target, blank } => {
                let nodes = &self.prog().policy.nodes;
                let target =
                    if *target < nodes.len() { nodes[*target].id.clone() } else { "不存在的步骤".to_string() };
                vec![Action::ReturnTo { target, reason: if *blank { "" } else { "退回重办" }.into() }]
            }
            Do::Withdraw => vec![Action::Withdraw],
            Do::Delegate(i) => {
                let to = if *i % 5 == 4 {
                    actor.principal.clone()
                } else {
                    self.fx.delegates[i % self.fx.delegates.len()].clone()
                };
                vec![Action::Delegate { to }]
            }
            Do::Urge => vec![Action::Urge { message: Some("请尽快办理".into()) }],
            Do::Extend(amount) => vec![Action::Extend { amount: *amount, reason: "延期办理".into() }],
            Do::Approver(i, add) => {
                let role = self.fx.roles[i % self.fx.roles.len()].clone();
                let reason = "会签调整".to_string();
                vec![if *add { Action::AddApprover { role, reason } } else { Action::RemoveApprover { role, reason } }]
            }
            Do::Transfer(i) => {
                let to = self.fx.texts[i % self.fx.texts.len()].clone();
                vec![Action::Transfer { to, reason: "职责调整".into() }]
            }
            Do::Copy(i) => {
                let to = self.fx.texts[i % self.fx.texts.len()].clone();
                vec![Action::CopyTo { to, message: Some("请知悉".into()) }]
            }
            Do::Read => vec![Action::MarkRead],
            Do::DecideExtension(true) => vec![Action::ApproveExtension { comment: None }],
            Do::DecideExtension(false) => vec![Action::RejectExtension { reason: "理由不充分".into() }],
        }
    }

    /// Form data for a step: every required field, some optional ones, then the flaw.
    fn form(&self, key: &str, def: &ir::Node, rng: &mut Rng, flaw: Flaw) -> BTreeMap<String, Value> {
        let element = self.state.nodes.get(key).and_then(|n| n.element.as_ref());
        let mut data = BTreeMap::new();
        for f in &def.form {
            if !f.optional || rng.chance(1, 2) {
                data.insert(f.name.clone(), self.value(&f.ty, element, rng));
            }
        }
        match flaw {
            Flaw::None => {}
            Flaw::Missing => {
                if let Some(f) = def.form.iter().find(|f| !f.optional) {
                    data.remove(&f.name);
                }
            }
            Flaw::Extra => {
                data.insert("多余字段".into(), text("x"));
            }
            Flaw::WrongType => {
                let keys: Vec<String> = data.keys().cloned().collect();
                if !keys.is_empty() {
                    let k = rng.pick(&keys).clone();
                    let wrong = if matches!(data[&k], Value::Bool(_)) { text("是") } else { Value::Bool(true) };
                    data.insert(k, wrong);
                }
            }
            Flaw::Empty => data.clear(),
        }
        data
    }

    fn value(&self, ty: &Type, element: Option<&Value>, rng: &mut Rng) -> Value {
        match ty {
            Type::Int => Value::int(*rng.pick(&self.fx.ints)),
            Type::Decimal if rng.chance(1, 2) => Value::int(*rng.pick(&self.fx.ints)),
            Type::Decimal => {
                Value::Number(BigRational::new((*rng.pick(&self.fx.ints)).into(), (1 + rng.below(9) as i64).into()))
            }
            Type::Text => match element {
                Some(e @ Value::Text(_)) if rng.chance(1, 2) => e.clone(),
                _ => Value::Text(rng.pick(&self.fx.texts).clone()),
            },
            Type::Bool => Value::Bool(rng.chance(1, 2)),
            Type::Date => {
                let day = self.now.with_timezone(&self.prog().offset).date_naive();
                Value::Date(day + TimeDelta::days(rng.below(60) as i64))
            }
            Type::Duration => Value::Duration(ir::Span { amount: 3, unit: ir::TimeUnit::Days }),
            Type::List { of } => Value::List((0..rng.below(13)).map(|_| self.value(of, element, rng)).collect()),
            Type::Record { fields } => {
                Value::Record(fields.iter().map(|(n, t)| (n.clone(), self.value(t, element, rng))).collect())
            }
        }
    }

    /// Vote counts around the step's electorate: mostly plausible, sometimes impossible.
    fn counts(&self, key: &str, rng: &mut Rng) -> VoteCounts {
        let node = self.state.nodes.get(key);
        let rules = node.and_then(|n| self.prog().node(&n.def)).and_then(|d| d.vote.as_ref());
        let env = oracle(self.fx, self.prog(), &self.state, key, None, BTreeMap::new());
        let count = |e: Option<&ir::Expr>, default: u64| {
            e.and_then(|e| eval::eval(e, &env).ok()).and_then(|v| v.as_i64()).map_or(default, |v| v.max(0) as u64)
        };
        let eligible = count(rules.map(|r| &r.eligible), 100);
        let seats = count(rules.and_then(|r| r.seats.as_ref()), 2);
        let present = if rng.chance(1, 10) { eligible + 1 } else { eligible * (60 + rng.below(41)) / 100 };
        let cast = if rng.chance(1, 10) { present + 1 } else { present * (40 + rng.below(61)) / 100 };
        let invalid = rng.below(cast / 10 + 1);
        let valid = cast.saturating_sub(invalid);
        let candidates = (seats + rng.below(4)).saturating_sub(1);
        let tallies = (0..candidates)
            .map(|i| {
                let candidate = match rng.below(20) {
                    0 => String::new(),
                    1 => "候选人0".to_string(),
                    _ => format!("候选人{i}"),
                };
                let votes = if rng.chance(1, 20) { valid + 1 } else { valid / 3 + rng.below(valid - valid / 3 + 1) };
                Tally { candidate, votes }
            })
            .collect();
        VoteCounts { present, cast, invalid, tallies }
    }

    // ---- the checks ---------------------------------------------------------------------------

    /// What the answer to a command must be, from the state it was decided on.
    fn expect(&self, cmd: &Command, answer: &Result<Vec<Event>, Refusal>) -> Check {
        let running = self.state.version > 0 && self.state.status == Status::Running;
        match cmd {
            // Issue 11.2: 已阅 is accepted exactly when an unread copy waits for the office,
            // whatever became of the instance.
            Command::Act { actor, node, action: Action::MarkRead, .. } => {
                let unread =
                    self.state.nodes.get(node).and_then(|n| n.copies.get(&actor.office)).is_some_and(|c| c.unread());
                prop_assert_eq!(
                    answer.is_ok(),
                    unread,
                    "`{}` of `{}` read `{}`: {:?}",
                    &actor.principal,
                    &actor.office,
                    node,
                    answer
                );
            }
            Command::Act { actor, node, action, .. } => {
                if !running {
                    prop_assert!(answer.is_err(), "acting on an instance that is not running: {:?}", answer);
                    return Ok(());
                }
                if self.state.suspended.is_some() {
                    prop_assert_eq!(answer.as_ref().map_err(Refusal::code), Err("F050"), "acted while suspended");
                    return Ok(());
                }
                let Some(n) = self.state.nodes.get(node) else { return Ok(()) };
                let Some(def) = self.prog().node(&n.def) else { return Ok(()) };
                let open_to_all =
                    action.from_outside_by() && self.prog().policy.roles.iter().any(|r| r.name == actor.role);
                if matches!(def.kind, NodeKind::Step(_))
                    && !def.roles.contains(&actor.role)
                    && !n.delegations.contains_key(&actor.principal)
                    && !open_to_all
                {
                    prop_assert_eq!(
                        answer.as_ref().map_err(Refusal::code),
                        Err("F006"),
                        "`{}` ({}) acting on `{}` (for {:?})",
                        &actor.principal,
                        &actor.role,
                        node,
                        &def.roles
                    );
                }
                // Issue 8: a return by hand only where the policy declares it (F030); urging only by
                // the roles it names or the step was escalated to (F031).
                let acts_as_itself = !n.delegations.contains_key(&actor.principal);
                if matches!(def.kind, NodeKind::Step(_)) && acts_as_itself && open_to_all {
                    let code = answer.as_ref().map_err(Refusal::code);
                    match action {
                        Action::ReturnTo { target, .. }
                            if !def
                                .returns
                                .iter()
                                .any(|r| r.targets.contains(target) && r.roles.contains(&actor.role)) =>
                        {
                            prop_assert_eq!(code, Err("F030"), "undeclared return of `{}` to `{}`", node, target)
                        }
                        Action::Urge { .. } if !super::urgers(def, n).contains(&actor.role) => {
                            prop_assert_eq!(code, Err("F031"), "`{}` urged `{}`", &actor.role, node)
                        }
                        // Issue 11.1: extending is for the roles `extend by` names (F047), by at
                        // most what is left of its `max` (F048).
                        Action::Extend { .. }
                            if !def.extend.as_ref().is_some_and(|e| e.roles.contains(&actor.role)) =>
                        {
                            prop_assert_eq!(code, Err("F047"), "`{}` extended `{}`", &actor.role, node)
                        }
                        // Issue 11.2: changing approvers is for the roles `approvers by` names (F055).
                        Action::AddApprover { .. } | Action::RemoveApprover { .. }
                            if !def.approvers.as_ref().is_some_and(|a| a.roles.contains(&actor.role)) =>
                        {
                            prop_assert_eq!(code, Err("F055"), "`{}` changed the approvers of `{}`", &actor.role, node)
                        }
                        // Issue 11.2: handing a step on is for the roles `transfer by` names (F053).
                        Action::Transfer { .. }
                            if !def.transfer.as_ref().is_some_and(|t| t.roles.contains(&actor.role)) =>
                        {
                            prop_assert_eq!(code, Err("F053"), "`{}` transferred `{}`", &actor.role, node)
                        }
                        // Issue 11.1: approving an extension is for `extend … approved by` (F047).
                        Action::ApproveExtension { .. } | Action::RejectExtension { .. }
                            if !def.extend.as_ref().is_some_and(|e| e.approved_by.contains(&actor.role)) =>
                        {
                            prop_assert_eq!(code, Err("F047"), "`{}` decided an extension of `{}`", &actor.role, node)
                        }
                        // Issue 11.2: copying is for the roles `copy by` names (F057).
                        Action::CopyTo { .. } if !def.copy_by.contains(&actor.role) => {
                            prop_assert_eq!(code, Err("F057"), "`{}` copied `{}`", &actor.role, node)
                        }
                        Action::Extend { amount, .. }
                            if def.extend.as_ref().is_some_and(|e| n.extended + amount > e.max.amount) =>
                        {
                            prop_assert_eq!(code, Err("F048"), "`{}` extended `{}` past its max", &actor.role, node)
                        }
                        _ => {}
                    }
                }
            }
            Command::Fire { node, kind, at } => {
                let t = Timer { node: node.clone(), kind: *kind, at: *at };
                let pending = pending_timers(self.ctx(), &self.state).contains(&t);
                if !pending || self.now < *at {
                    prop_assert_eq!(
                        answer,
                        &Ok(Vec::new()),
                        "a timer {} acted: {:?} at {}",
                        if pending { "not yet due" } else { "not pending" },
                        &t,
                        self.now
                    );
                }
            }
            Command::Cancel { .. } if !running => prop_assert!(answer.is_err()),
            // Issue 11.3: only the roles declared `may suspend` (F052); while suspended nothing is
            // acted on (F050) and no deadline timer is pending.
            Command::Suspend { actor, .. } | Command::Resume { actor, .. } if running => {
                let may = self.prog().policy.roles.iter().any(|r| r.name == actor.role && r.may_suspend);
                if !may {
                    prop_assert_eq!(answer.as_ref().map_err(Refusal::code), Err("F052"), "{} suspended", &actor.role);
                }
            }
            // Issue 11.4: only the roles declared `may correct` (F059).
            Command::Correct { actor, .. } if running => {
                let may = self.prog().policy.roles.iter().any(|r| r.name == actor.role && r.may_correct);
                if !may {
                    prop_assert_eq!(answer.as_ref().map_err(Refusal::code), Err("F059"), "{} corrected", &actor.role);
                }
            }
            Command::Correct { .. } => prop_assert!(answer.is_err(), "corrected an instance that is not running"),
            Command::Start { .. }
            | Command::Migrate { .. }
            | Command::Cancel { .. }
            | Command::CalendarAdded { .. }
            | Command::Suspend { .. }
            | Command::Resume { .. } => {}
        }
        Ok(())
    }

    /// Checks the events of an accepted command one by one, on a copy of the state.
    fn check_events(&self, cmd: &Command, events: &[Event]) -> Check {
        let mut w = self.state.clone();
        for (i, e) in events.iter().enumerate() {
            match e {
                Event::Opened { node, .. } => {
                    let status = w.nodes.get(node).map(|n| n.status);
                    prop_assert_eq!(status, Some(NodeStatus::Waiting), "`{}` opened from {:?}", node, status);
                }
                Event::Completed { node, .. } => {
                    let status = w.nodes.get(node).map(|n| n.status);
                    prop_assert_eq!(status, Some(NodeStatus::Open), "`{}` completed from {:?}", node, status);
                }
                Event::Acted { node, act } => {
                    let def = w.nodes.get(node).and_then(|n| self.prog().node(&n.def));
                    prop_assert!(
                        def.is_some_and(|d| d.roles.contains(&act.actor.role)),
                        "`{}` recorded an act of `{}` in the name of role `{}`, which the step does not list",
                        node,
                        &act.actor.principal,
                        &act.actor.role
                    );
                }
                Event::WindowClosed { node, at } => {
                    prop_assert!(self.now >= *at, "window of `{}` closed at {} before its end {}", node, self.now, at)
                }
                Event::Overdue { node, due_at }
                | Event::Escalated { node, due_at, .. }
                | Event::Notified { node, due_at, .. } => {
                    prop_assert!(
                        self.now >= *due_at,
                        "breach of `{}` at {} before its deadline {}",
                        node,
                        self.now,
                        due_at
                    )
                }
                _ => {}
            }
            apply(&mut w, e, self.now);
            if let Event::Completed { node, outcome } = e {
                self.check_completed(&w, node, *outcome, &events[..i], cmd)?;
            }
        }
        Ok(())
    }

    /// Property 2: a node completes only when its rule is met (`w` holds the completion).
    fn check_completed(&self, w: &State, key: &str, outcome: Outcome, earlier: &[Event], cmd: &Command) -> Check {
        let n = &w.nodes[key];
        let def = self.prog().node(&n.def).unwrap();
        let is_template = def.for_each.is_some() && n.element.is_none();
        if is_template || matches!(def.kind, NodeKind::Phase | NodeKind::Call) {
            prop_assert_eq!(outcome, Outcome::Done);
            let members: Vec<&NodeState> = if is_template {
                w.nodes
                    .iter()
                    .filter(|(k, m)| m.def == def.id && m.element.is_some() && *k != key)
                    .map(|x| x.1)
                    .collect()
            } else {
                let ids = self.prog().policy.nodes.iter().filter(|m| m.parent.as_deref() == Some(&def.id));
                ids.filter_map(|m| w.nodes.get(&m.id)).collect()
            };
            prop_assert!(
                members.iter().all(|m| matches!(m.status, NodeStatus::Done | NodeStatus::Skipped)),
                "group `{}` completed with members not done",
                key
            );
            return Ok(());
        }
        let NodeKind::Step(kind) = def.kind else { return Ok(()) };
        // Issue 11.2: the rule is judged over the approvers as added (加签) and removed (减签).
        let changed;
        let def = if n.added_roles.is_empty() && n.removed_roles.is_empty() {
            def
        } else {
            let mut d = def.clone();
            d.roles =
                def.roles.iter().chain(&n.added_roles).filter(|r| !n.removed_roles.contains(r)).cloned().collect();
            changed = d;
            &changed
        };
        // A missed deadline with `on breach reject` rejects any step.
        let breach = matches!(cmd, Command::Fire { .. })
            && def.on_breach.contains(&ir::BreachAction::Reject)
            && earlier
                .iter()
                .any(|e| matches!(e, Event::Overdue { node, .. } | Event::WindowClosed { node, .. } if node == key));
        if outcome == Outcome::Rejected && breach {
            return Ok(());
        }
        if let Some(until) = n.min_until {
            prop_assert!(
                self.now >= until,
                "`{}` completed ({:?}) at {}, before its minimum {}",
                key,
                outcome,
                self.now,
                until
            );
        }
        let did = |role: &String, what: &str| n.acts.iter().any(|a| a.action == what && a.actor.role == *role);
        match (kind, outcome) {
            (StepKind::Approval, Outcome::Approved) => {
                let mut order: Vec<&str> = Vec::new();
                for a in n.acts.iter().filter(|a| a.action == "approve" && def.roles.contains(&a.actor.role)) {
                    if !order.contains(&a.actor.role.as_str()) {
                        order.push(&a.actor.role);
                    }
                }
                prop_assert!(
                    rule_met(def, order.len()),
                    "`{}` approved under {:?} by {:?} of {:?}",
                    key,
                    &def.rule,
                    order,
                    &def.roles
                );
                if def.rule == Some(ApprovalRule::Sequence) {
                    prop_assert_eq!(&order, &def.roles, "`{}` approved out of order", key);
                }
            }
            (StepKind::Approval, Outcome::Rejected) => {
                let rejected = def.roles.iter().filter(|r| did(r, "reject")).count();
                prop_assert!(rejected > 0, "`{}` rejected with no rejection by a listed role", key);
                if matches!(def.rule, Some(ApprovalRule::AtLeast { .. } | ApprovalRule::Fraction { .. })) {
                    let approved = def.roles.iter().filter(|r| did(r, "approve")).count();
                    let pending = def.roles.len() - approved - rejected;
                    prop_assert!(!rule_met(def, approved + pending), "`{}` rejected while its rule could be met", key);
                }
            }
            (StepKind::Filing, Outcome::Filed) => {
                prop_assert!(def.roles.iter().all(|r| did(r, "file")), "`{}` filed without every role", key)
            }
            (StepKind::Consultation, Outcome::Done) => {
                prop_assert!(def.roles.iter().all(|r| did(r, "opinion")), "`{}` done without every opinion", key)
            }
            (StepKind::Publicity, Outcome::Done) => {
                prop_assert!(n.min_until.is_some(), "publicity `{}` without a minimum completed", key)
            }
            (StepKind::Vote, Outcome::Done) => {
                let recorded = earlier.iter().any(|e| matches!(e, Event::VoteRecorded { node, .. } if node == key));
                prop_assert!(recorded, "vote `{}` completed without counts", key);
                self.check_vote(w, key, def)?;
            }
            (StepKind::Task | StepKind::Meeting, Outcome::Done) => self.check_form(w, key, def)?,
            (kind, outcome) => prop_assert!(false, "{:?} step `{}` completed as {:?}", kind, key, outcome),
        }
        Ok(())
    }

    fn check_vote(&self, w: &State, key: &str, def: &ir::Node) -> Check {
        let n = &w.nodes[key];
        let (Some(result), Some(rules)) = (&n.vote, &def.vote) else {
            prop_assert!(false, "vote `{}` completed without a result", key);
            return Ok(());
        };
        let c = &result.counts;
        let env = oracle(self.fx, self.prog(), w, key, None, BTreeMap::new());
        let eligible = eval::eval(&rules.eligible, &env).ok().and_then(|v| v.as_i64());
        prop_assert_eq!(eligible, i64::try_from(result.eligible).ok());
        let seats = rules.seats.as_ref().map(|s| eval::eval(s, &env).ok().and_then(|v| v.as_i64()));
        prop_assert_eq!(seats, result.seats.map(|s| i64::try_from(s).ok()));
        prop_assert!(c.present <= result.eligible && c.cast <= c.present && c.invalid <= c.cast, "counts {:?}", c);
        let names: BTreeSet<&str> = c.tallies.iter().map(|t| t.candidate.as_str()).collect();
        prop_assert!(names.len() == c.tallies.len() && !names.contains(""), "slate {:?}", &c.tallies);
        prop_assert!(c.tallies.iter().all(|t| t.votes <= c.cast - c.invalid), "tallies {:?}", &c.tallies);
        let int = |v: u64| Value::int(v as i64);
        let mut vars = BTreeMap::from([
            ("eligible".to_string(), int(result.eligible)),
            ("present".to_string(), int(c.present)),
            ("cast".to_string(), int(c.cast)),
            ("invalid".to_string(), int(c.invalid)),
            ("candidates".to_string(), int(c.tallies.len() as u64)),
        ]);
        if let Some(s) = result.seats {
            vars.insert("seats".into(), int(s));
        }
        let holds = |e: &ir::Expr, vars: &BTreeMap<String, Value>| {
            eval::eval(e, &oracle(self.fx, self.prog(), w, key, None, vars.clone())) == Ok(Value::Bool(true))
        };
        if let Some(q) = &rules.quorum {
            prop_assert!(holds(q, &vars), "vote `{}` completed without its quorum: {:?}", key, c);
        }
        if let Some(s) = &rules.slate {
            prop_assert!(holds(s, &vars), "vote `{}` completed with a slate against its rule: {:?}", key, c);
        }
        prop_assert!(result.seats.is_none_or(|s| result.elected.len() as u64 <= s), "too many elected");
        for name in &result.elected {
            let t = c.tallies.iter().find(|t| t.candidate == *name);
            prop_assert!(t.is_some(), "`{}` elected but not on the slate", name);
            let mut v = vars.clone();
            v.insert("votes".into(), int(t.map_or(0, |t| t.votes)));
            prop_assert!(holds(&rules.elect, &v), "`{}` elected without the votes: {:?}", name, c);
        }
        Ok(())
    }

    fn check_form(&self, w: &State, key: &str, def: &ir::Node) -> Check {
        let n = &w.nodes[key];
        let Some(data) = &n.form else {
            prop_assert!(def.form.iter().all(|f| f.optional), "`{}` completed without its form", key);
            return Ok(());
        };
        for k in data.keys() {
            prop_assert!(def.form.iter().any(|f| f.name == *k), "`{}` recorded an unknown field `{}`", key, k);
        }
        for f in &def.form {
            match data.get(&f.name) {
                Some(v) => {
                    prop_assert!(has_type(&f.ty, v), "`{}`: field `{}` = `{}` is not {}", key, &f.name, v, &f.ty)
                }
                None => prop_assert!(f.optional, "`{}` completed without field `{}`", key, &f.name),
            }
        }
        for r in &def.requires {
            let ok = eval::eval(&r.condition, &oracle(self.fx, self.prog(), w, key, Some(data), BTreeMap::new()));
            prop_assert_eq!(ok, Ok(Value::Bool(true)), "`{}` completed against `{}`: {:?}", key, &r.message, data);
        }
        Ok(())
    }

    /// Properties 1 and 4 on the state after a command.
    fn check_state(&self) -> Check {
        let replayed = replay(self.history.iter().map(|(e, at)| (e, *at)));
        prop_assert_eq!(&replayed, &self.state, "replay differs");
        let restored = replay(self.stored.iter().map(|(e, at)| (e, *at)));
        prop_assert_eq!(&restored, &self.state, "replay of the stored (JSON) events differs");
        // The next cycle's timer belongs to the instance, not to a node (R0.3).
        for t in pending_timers(self.ctx(), &self.state).into_iter().filter(|t| t.kind != TimerKind::NextCycle) {
            let status = self.state.nodes.get(&t.node).map(|n| n.status);
            prop_assert_eq!(status, Some(NodeStatus::Open), "timer {:?} of a node that is not open", &t);
            // Issue 11.3: no deadline runs while the instance is suspended.
            prop_assert!(
                self.state.suspended.is_none() || !matches!(t.kind, TimerKind::Due | TimerKind::Reminder),
                "a deadline timer {:?} while suspended",
                &t
            );
        }
        if self.state.status == Status::Completed {
            let top = self.prog().policy.nodes.iter().filter(|n| n.parent.is_none());
            for n in top {
                let status = self.state.nodes.get(&n.id).map(|x| x.status);
                prop_assert!(
                    matches!(status, Some(NodeStatus::Done | NodeStatus::Skipped)),
                    "instance completed with `{}` {:?}",
                    &n.id,
                    status
                );
            }
        }
        Ok(())
    }
}

/// Whether `approvals` distinct listed roles satisfy the step's rule.
fn rule_met(def: &ir::Node, approvals: usize) -> bool {
    let (a, n) = (approvals as u64, def.roles.len() as u64);
    match def.rule.clone().unwrap_or(ApprovalRule::All) {
        ApprovalRule::All | ApprovalRule::Sequence => a == n,
        ApprovalRule::Any => a >= 1,
        ApprovalRule::AtLeast { k } => a >= u64::from(k),
        ApprovalRule::Fraction { strict: true, num, den } => a * u64::from(den) > u64::from(num) * n,
        ApprovalRule::Fraction { strict: false, num, den } => a * u64::from(den) >= u64::from(num) * n,
    }
}

fn has_type(ty: &Type, v: &Value) -> bool {
    match (ty, v) {
        (Type::Int, Value::Number(n)) => n.is_integer(),
        (Type::Decimal, Value::Number(_))
        | (Type::Text, Value::Text(_))
        | (Type::Bool, Value::Bool(_))
        | (Type::Date, Value::Date(_))
        | (Type::Duration, Value::Duration(_)) => true,
        (Type::List { of }, Value::List(items)) => items.iter().all(|i| has_type(of, i)),
        (Type::Record { fields }, Value::Record(map)) => {
            map.len() == fields.len() && fields.iter().all(|(n, t)| map.get(n).is_some_and(|x| has_type(t, x)))
        }
        _ => false,
    }
}

/// Names visible to a step's expressions, for the checks.
struct Oracle<'a> {
    fx: &'a Fixture,
    program: &'a Program,
    state: &'a State,
    element: Option<(&'a str, &'a Value)>,
    form: Option<&'a BTreeMap<String, Value>>,
    vars: BTreeMap<String, Value>,
}

fn oracle<'a>(
    fx: &'a Fixture,
    program: &'a Program,
    state: &'a State,
    key: &str,
    form: Option<&'a BTreeMap<String, Value>>,
    vars: BTreeMap<String, Value>,
) -> Oracle<'a> {
    let n = state.nodes.get(key);
    let var = n.and_then(|n| program.node(&n.def)).and_then(|d| d.for_each.as_ref()).map(|f| f.var.as_str());
    let element = var.zip(n.and_then(|n| n.element.as_ref()));
    Oracle { fx, program, state, element, form, vars }
}

impl Env for Oracle<'_> {
    fn lookup(&self, kind: RefKind, id: &str) -> Option<Value> {
        match kind {
            RefKind::Param => self.state.params.get(id).cloned(),
            RefKind::Value => self.state.values.get(id).cloned(),
            RefKind::Element => self.element.filter(|(v, _)| *v == id).map(|(_, x)| x.clone()),
            RefKind::Field => self.form.and_then(|f| f.get(id).cloned()),
            RefKind::Vote => self.vars.get(id).cloned(),
        }
    }
    fn node_time(&self, node: &str, end: bool) -> Option<NaiveDate> {
        let n = self.state.nodes.get(node)?;
        let at = if end { n.closed_at? } else { n.opened_at? };
        Some(at.with_timezone(&self.program.offset).date_naive())
    }
    fn node_field(&self, node: &str, field: &str) -> Option<Value> {
        self.state.nodes.get(node)?.form.as_ref()?.get(field).cloned()
    }
    fn add_workdays(&self, date: NaiveDate, n: i64) -> Result<NaiveDate, EvalError> {
        self.fx.calendar.add_workdays(date, n).map_err(super::period::eval_error)
    }
}

// ---- the tests ----------------------------------------------------------------------------------

#[test]
fn the_small_policies_compile_and_cover_every_kind_and_rule() {
    let fxs = small_policies();
    let nodes: Vec<&ir::Node> = fxs.iter().flat_map(|f| &f.program.policy.nodes).collect();
    for k in [
        StepKind::Task,
        StepKind::Approval,
        StepKind::Filing,
        StepKind::Consultation,
        StepKind::Publicity,
        StepKind::Vote,
        StepKind::Meeting,
    ] {
        assert!(nodes.iter().any(|n| n.kind == NodeKind::Step(k)), "no {k:?} step");
    }
    let rules: Vec<&ApprovalRule> = nodes.iter().filter_map(|n| n.rule.as_ref()).collect();
    assert!(rules.contains(&&ApprovalRule::All) && rules.contains(&&ApprovalRule::Any));
    assert!(rules.contains(&&ApprovalRule::Sequence) && rules.contains(&&ApprovalRule::AtLeast { k: 2 }));
    assert!(rules.iter().filter(|r| matches!(r, ApprovalRule::Fraction { .. })).count() == 2);
    assert!(nodes.iter().any(|n| n.for_each.is_some()));
    assert!(nodes.iter().any(|n| n.kind == NodeKind::Phase && n.window.is_some()));
    assert!(nodes.iter().any(|n| n.kind == NodeKind::Step(StepKind::Publicity)
        && n.min_duration.is_some()
        && n.on_objection.is_some()));
    assert!(nodes.iter().any(|n| matches!(n.on_rejected, Some(ir::OnRejected::Return { .. }))));
    assert!(nodes.iter().any(|n| n.deadline.is_some() && !n.on_breach.is_empty()));
    assert!(nodes.iter().any(|n| n.guard.is_some()));
}

#[test]
fn properties_hold_on_approval_rules() {
    check(&small_policies()[0], CASES);
}

#[test]
fn properties_hold_on_every_step_kind() {
    check(&small_policies()[1], CASES);
}

#[test]
fn properties_hold_on_phases_windows_and_fan_out() {
    check(&small_policies()[2], CASES);
}

#[test]
fn properties_hold_on_bundled_reform_pilot() {
    check(&bundled("reform_pilot"), BUNDLED_CASES);
}

#[test]
fn properties_hold_on_bundled_election() {
    check(&bundled("election"), BUNDLED_CASES);
}

#[test]
fn properties_hold_on_bundled_community_access() {
    check(&bundled("community_access"), BUNDLED_CASES);
}

#[test]
fn properties_hold_on_bundled_residents_demand() {
    check(&bundled("residents_demand"), BUNDLED_CASES);
}

#[test]
fn properties_hold_on_bundled_property_service() {
    check(&bundled("property_service"), BUNDLED_CASES);
}
