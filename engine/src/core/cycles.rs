//! What relates one instance to others, decided purely: the next cycle of a recurring procedure
//! (R0.3: 换届, 年度评议, 月度考核 come round by themselves), caps over one cycle's instances
//! (R3.7: 优秀不超过10%), and prerequisites in other procedures (R3.6: 稳定风险评估 before a
//! consent).
//!
//! The core reads no store: what it needs to know about other instances comes in as [`Facts`],
//! which the runtime gathers by asking [`needs`] first. The store then enforces the same facts at
//! commit (a quota's counter is claimed with a compare-and-set), so a decision taken on counts
//! that changed meanwhile fails whole and is decided again.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use civicflow_dsl::eval::{self, Env, EvalError};
use civicflow_dsl::ir::{self, CycleEvery, RecurUnit, RefKind};
use civicflow_dsl::value::Value;
use num_rational::BigRational;
use serde::{Deserialize, Serialize};

use super::{
    day_start, eval_refusal, Action, Actor, Context, Decision, Event, Refusal, State, Status, Timer, TimerKind,
};

/// The timer node of the next cycle (no step has this name: step ids never start with `~`).
pub const CYCLE_NODE: &str = "~cycle";

/// Recorded in a later cycle's `Started` event: its number and the instance before it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleLink {
    pub number: u32,
    pub previous: String,
}

/// An instance's place among the cycles of its procedure.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleState {
    /// The cycle's number; 0 is read as 1 (an instance started by hand is the first).
    #[serde(default)]
    pub number: u32,
    /// The instance of the cycle before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// The next cycle, once due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<NextCycle>,
}

impl CycleState {
    pub fn is_first_and_open(&self) -> bool {
        *self == CycleState::default()
    }

    /// The cycle's number, from 1.
    pub fn number(&self) -> u32 {
        self.number.max(1)
    }
}

/// The next cycle: due (a task for `awaiting` when it needs fresh parameters) or opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextCycle {
    pub cycle: u32,
    pub instance: String,
    pub due_at: DateTime<Utc>,
    /// The role whose task it is to start it (下一周期待启动), while it is not opened.
    pub awaiting: Option<String>,
    pub opened: bool,
    /// It could not open by itself: the refusal's code and words (`Event::NextCycleRefused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// What the store knows about other instances, passed into `decide`.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// This instance's id: the next cycle's id is made from it.
    pub instance: Option<String>,
    /// For a `Start`: the cycle the new instance is.
    pub link: Option<CycleLink>,
    /// Per quota id: the instances of this cycle and how many already meet the condition.
    pub quotas: BTreeMap<String, QuotaCount>,
    /// Per [`PrerequisiteQuery::key`]: what the store found.
    pub prerequisites: BTreeMap<String, Found>,
    /// For a next-cycle timer: the new instance could not start (its refusal's code and words),
    /// so the due cycle is recorded as refused instead of retried for ever.
    pub next_cycle_refused: Option<(String, String)>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaCount {
    /// Instances of the cycle (the base of the share).
    pub base: u64,
    /// Of them, already meeting the quota's condition.
    pub used: u64,
}

/// The latest instance of another procedure about a matter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// Completed: the prerequisite is met.
    Completed,
    /// Ended by a rejection (a negative assessment): it stops the decision.
    Negative,
    /// Still running.
    Running,
    Nothing,
}

/// A question for the store: the latest instance of `policy` whose parameter `param` is `value`.
#[derive(Clone, Debug, PartialEq)]
pub struct PrerequisiteQuery {
    pub key: String,
    pub policy: String,
    pub param: String,
    pub value: Value,
}

/// The facts a command needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Needs {
    /// Quotas a rating on the acted step may count against: their ids.
    pub quotas: Vec<String>,
    pub prerequisites: Vec<PrerequisiteQuery>,
}

/// What `command` needs to know about other instances before it can be decided.
pub fn needs(ctx: Context, state: &State, command: &super::Command) -> Needs {
    let mut out = Needs::default();
    let super::Command::Act { node, .. } = command else { return out };
    let Some(n) = state.nodes.get(node) else { return out };
    let Some(def) = ctx.program.node(&n.def) else { return out };
    out.quotas = ctx.program.policy.quotas.iter().filter(|q| q.node == def.id).map(|q| q.id.clone()).collect();
    if !def.prerequisites.is_empty() {
        let facts = Facts::default();
        let d = Decision {
            ctx,
            state: state.clone(),
            events: Vec::new(),
            now: DateTime::<Utc>::MIN_UTC,
            facts: &facts,
            by_scan: false,
        };
        let env = d.env(node, None, None);
        for p in &def.prerequisites {
            if let Ok(value) = eval::eval(&p.value, &env) {
                out.prerequisites.push(PrerequisiteQuery {
                    key: prerequisite_key(&p.policy, &p.param, &value),
                    policy: p.policy.clone(),
                    param: p.param.clone(),
                    value,
                });
            }
        }
    }
    out
}

fn prerequisite_key(policy: &str, param: &str, value: &Value) -> String {
    format!("{policy}/{param}={value}")
}

/// The policy's recurrences; a version stored before `cycles` existed recurs from its start
/// with every parameter carried over.
pub fn cycles(policy: &ir::Policy) -> Vec<ir::Cycle> {
    if !policy.cycles.is_empty() {
        return policy.cycles.clone();
    }
    policy
        .recurrence
        .map(|r| ir::Cycle {
            every: CycleEvery::Span { n: r.every, unit: r.unit },
            on: Vec::new(),
            anchor: None,
            carry: policy.params.iter().map(|p| p.id.clone()).collect(),
            dated: None,
            by: None,
            fresh: Vec::new(),
        })
        .into_iter()
        .collect()
}

/// When the next cycle is due and by which recurrence: the earliest whose anchor is known.
pub fn next_due(ctx: Context, state: &State) -> Option<(ir::Cycle, DateTime<Utc>)> {
    next_due_in(ctx.program, state)
}

/// [`next_due`] for a reader that has the program but no calendar (the API's views): no cycle
/// counts working days.
pub fn next_due_in(program: &super::Program, state: &State) -> Option<(ir::Cycle, DateTime<Utc>)> {
    if matches!(state.status, Status::Cancelled | Status::Rejected) || state.cycle.next.is_some() {
        return None;
    }
    cycles(&program.policy)
        .into_iter()
        .filter_map(|c| due_of(program, &c, state).map(|at| (c, at)))
        .min_by_key(|(_, at)| *at)
}

/// The timer of the next cycle, if the instance wants one.
pub fn timer(ctx: Context, state: &State) -> Option<Timer> {
    next_due(ctx, state).map(|(_, at)| Timer { node: CYCLE_NODE.into(), kind: TimerKind::NextCycle, at })
}

fn due_of(program: &super::Program, c: &ir::Cycle, state: &State) -> Option<DateTime<Utc>> {
    let offset = program.offset;
    let anchor = match &c.anchor {
        None => state.started_at?,
        Some(node) => {
            let n = state.nodes.get(node)?;
            if n.status != super::NodeStatus::Done {
                return None;
            }
            n.closed_at?
        }
    };
    let a = anchor.with_timezone(&offset).date_naive();
    let date = match c.every {
        // R0.1: the day of the event is not counted; the period ends at 24:00 of the
        // corresponding day (the month's last day if it has none), so the next cycle is due at
        // the start of the day after.
        CycleEvery::Span { n, unit } => {
            let months = match unit {
                RecurUnit::Years => n.checked_mul(12)?,
                RecurUnit::Months => n,
            };
            a.checked_add_months(Months::new(months))?.succ_opt()?
        }
        CycleEvery::Monthly => next_day(a, &(1..=12).collect::<Vec<_>>(), &c.on)?,
        CycleEvery::Quarterly => next_day(a, &[1, 4, 7, 10], &c.on)?,
        CycleEvery::HalfYearly => next_day(a, &[1, 7], &c.on)?,
        CycleEvery::Yearly => next_day(a, &[1], &c.on)?,
    };
    day_start(offset, date).ok()
}

/// The first chosen day strictly after `after`: `on` days of the months that start a period
/// (`day N` past a month's end is its last day), or days of the year (`MM-DD`).
fn next_day(after: NaiveDate, period_months: &[u32], on: &[ir::CycleDay]) -> Option<NaiveDate> {
    let days: Vec<ir::CycleDay> = if on.is_empty() { vec![ir::CycleDay { month: None, day: 1 }] } else { on.to_vec() };
    let mut best: Option<NaiveDate> = None;
    for year in after.year()..=after.year() + 2 {
        for d in &days {
            let months: Vec<u32> = match d.month {
                Some(m) => vec![m],
                None => period_months.to_vec(),
            };
            for m in months {
                let Some(first) = NaiveDate::from_ymd_opt(year, m, 1) else { continue };
                let last = first.checked_add_months(Months::new(1)).and_then(|x| x.pred_opt())?.day();
                let Some(date) = NaiveDate::from_ymd_opt(year, m, d.day.min(last)) else { continue };
                if date > after && best.is_none_or(|b| date < b) {
                    best = Some(date);
                }
            }
        }
    }
    best
}

/// The id of cycle `number` of the procedure whose instance `id` is (`{first id}~{number}`).
pub fn next_instance_id(id: &str, number: u32) -> String {
    let base = match id.rsplit_once('~') {
        Some((b, n)) if n.parse::<u32>().is_ok() => b,
        _ => id,
    };
    format!("{base}~{number}")
}

/// The period a cycle's instance belongs to, for quotas (R3.7): the month, quarter, half-year
/// or year of its start in the policy's zone, by its first recurrence.
pub fn period(ctx: Context, state: &State) -> Option<String> {
    let c = cycles(&ctx.program.policy).into_iter().next()?;
    let d = state.started_at?.with_timezone(&ctx.program.offset).date_naive();
    let (y, m) = (d.year(), d.month());
    Some(match c.every {
        CycleEvery::Monthly | CycleEvery::Span { unit: RecurUnit::Months, .. } => format!("{y}-{m:02}"),
        CycleEvery::Quarterly => format!("{y}-Q{}", (m - 1) / 3 + 1),
        CycleEvery::HalfYearly => format!("{y}-H{}", (m - 1) / 6 + 1),
        CycleEvery::Yearly | CycleEvery::Span { unit: RecurUnit::Years, .. } => format!("{y}"),
    })
}

/// The parameters of the next cycle: those carried over, the due date in the `dated`
/// parameter, then what the starter gives (which may not replace a carried one).
pub fn next_params(
    ctx: Context,
    state: &State,
    cycle: &ir::Cycle,
    due_at: DateTime<Utc>,
    given: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, Value>, Refusal> {
    let mut params = BTreeMap::new();
    for p in &cycle.carry {
        if let Some(v) = state.params.get(p) {
            params.insert(p.clone(), v.clone());
        }
    }
    if let Some(d) = &cycle.dated {
        params.insert(d.clone(), Value::Date(due_at.with_timezone(&ctx.program.offset).date_naive()));
    }
    for (k, v) in given {
        if params.contains_key(k) {
            return Err(Refusal::BadParam {
                param: k.clone(),
                problem: "is carried over from the cycle before (or is its due date) and cannot be given".into(),
            });
        }
        params.insert(k.clone(), v.clone());
    }
    Ok(params)
}

/// The recurrence that made the next cycle due (the earliest), for its parameters.
pub fn due_cycle(ctx: Context, state: &State) -> Option<ir::Cycle> {
    let next = state.cycle.next.as_ref()?;
    let mut probe = state.clone();
    probe.cycle.next = None;
    next_due(ctx, &probe).filter(|(_, at)| *at == next.due_at).map(|(c, _)| c)
}

/// A due next-cycle timer: open the next cycle, or, when it needs fresh parameters, a task for
/// the role that starts it. Exactly once: a timer at another instant, or after the next cycle is
/// due, is spent.
pub(super) fn fire(d: &mut Decision, node: &str, at: DateTime<Utc>) -> Result<(), Refusal> {
    if node != CYCLE_NODE || d.now < at {
        return Ok(());
    }
    let Some((cycle, due)) = next_due(d.ctx, &d.state) else { return Ok(()) };
    if due != at {
        return Ok(());
    }
    let Some(id) = d.facts.instance.as_deref() else {
        return Err(Refusal::Evaluation { message: "the next cycle needs the instance's id".into() });
    };
    let number = d.state.cycle.number() + 1;
    let instance = next_instance_id(id, number);
    if let Some((code, reason)) = d.facts.next_cycle_refused.clone() {
        // Recorded once, visible on the instance; the role that may start a cycle gets the task.
        d.emit(Event::NextCycleRefused { cycle: number, instance, due_at: at, code, reason, role: cycle.by.clone() });
        return Ok(());
    }
    match (&cycle.by, cycle.fresh.is_empty()) {
        (Some(role), false) => d.emit(Event::NextCycleDue { cycle: number, instance, due_at: at, role: role.clone() }),
        _ => d.emit(Event::NextCycleOpened { cycle: number, instance, due_at: at }),
    }
    Ok(())
}

/// The task "start the next cycle" done by `actor` (R0.3): records that it is opened; the
/// runtime creates the instance in the same commit.
pub fn start_next(
    ctx: Context,
    state: &State,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(Vec<Event>, State), Refusal> {
    let Some(next) = state.cycle.next.as_ref() else {
        return Err(Refusal::NoNextCycleDue { detail: "the next cycle is not due yet".into() });
    };
    if next.opened {
        return Err(Refusal::NoNextCycleDue { detail: format!("it was opened already as `{}`", next.instance) });
    }
    let Some(role) = &next.awaiting else {
        let detail = match &next.refused {
            Some(why) => format!("it could not open ({why}) and the policy names no role to start it"),
            None => "it opens by itself".into(),
        };
        return Err(Refusal::NoNextCycleDue { detail });
    };
    if actor.role != *role {
        return Err(Refusal::NotEntitled {
            node: CYCLE_NODE.into(),
            role: actor.role.clone(),
            allowed: vec![role.clone()],
        });
    }
    let facts = Facts::default();
    let mut d = Decision { ctx, state: state.clone(), events: Vec::new(), now, facts: &facts, by_scan: false };
    d.emit(Event::NextCycleOpened { cycle: next.cycle, instance: next.instance.clone(), due_at: next.due_at });
    Ok((d.events, d.state))
}

pub(super) fn apply_started(state: &mut State, link: Option<&CycleLink>) {
    if let Some(l) = link {
        state.cycle.number = l.number;
        state.cycle.previous = Some(l.previous.clone());
    }
}

pub(super) fn apply_next(state: &mut State, event: &Event) {
    match event {
        Event::NextCycleDue { cycle, instance, due_at, role } => {
            state.cycle.next = Some(NextCycle {
                cycle: *cycle,
                instance: instance.clone(),
                due_at: *due_at,
                awaiting: Some(role.clone()),
                opened: false,
                refused: None,
            });
        }
        Event::NextCycleRefused { cycle, instance, due_at, code, reason, role } => {
            state.cycle.next = Some(NextCycle {
                cycle: *cycle,
                instance: instance.clone(),
                due_at: *due_at,
                awaiting: role.clone(),
                opened: false,
                refused: Some(format!("{code}: {reason}")),
            });
        }
        Event::NextCycleOpened { cycle, instance, due_at } => {
            let awaiting = state.cycle.next.as_ref().and_then(|n| n.awaiting.clone());
            state.cycle.next = Some(NextCycle {
                cycle: *cycle,
                instance: instance.clone(),
                due_at: *due_at,
                awaiting,
                opened: true,
                refused: None,
            });
        }
        _ => {}
    }
}

/// Names an instance's state shows to a quota's condition: its parameters, values and forms.
struct StateEnv<'a> {
    state: &'a State,
}

impl Env for StateEnv<'_> {
    fn lookup(&self, kind: RefKind, id: &str) -> Option<Value> {
        match kind {
            RefKind::Param => self.state.params.get(id).cloned(),
            RefKind::Value => self.state.values.get(id).cloned(),
            _ => None,
        }
    }
    fn node_field(&self, node: &str, field: &str) -> Option<Value> {
        self.state.nodes.get(node)?.form.as_ref()?.get(field).cloned()
    }
    fn add_workdays(&self, _: NaiveDate, _: i64) -> Result<NaiveDate, EvalError> {
        Err(EvalError::NoCalendar)
    }
}

/// Whether the instance meets a quota's condition (a form not recorded yet does not).
pub fn meets(state: &State, q: &ir::Quota) -> bool {
    eval::eval(&q.condition, &StateEnv { state }) == Ok(Value::Bool(true))
}

/// The quotas a change from `before` to `after` takes a place in: their condition became true.
pub fn quota_claims<'p>(policy: &'p ir::Policy, before: &State, after: &State) -> Vec<&'p ir::Quota> {
    policy.quotas.iter().filter(|q| meets(after, q) && !meets(before, q)).collect()
}

/// The quotas a change gives a place back in: their condition held and no longer does (a return
/// reset the rating, R3.7), so the place is free for another instance of the cycle.
pub fn quota_releases<'p>(policy: &'p ir::Policy, before: &State, after: &State) -> Vec<&'p ir::Quota> {
    policy.quotas.iter().filter(|q| meets(before, q) && !meets(after, q)).collect()
}

/// The largest number of a cycle's `base` instances a quota lets meet its condition:
/// `floor(share × base)` (10 % of 10 communities is 1; of 9, none).
pub fn cap(q: &ir::Quota, base: u64) -> u64 {
    let Value::Number(share) = &q.share else { return 0 };
    let Ok(base) = base.to_string().parse() else { return 0 };
    let n = (share * BigRational::from_integer(base)).floor();
    n.to_integer().to_string().parse::<u64>().unwrap_or(0)
}

/// R3.7: a rating that would take a cycle past its cap is refused with the rule's words.
pub(super) fn check_quotas(d: &Decision, before: &State) -> Result<(), Refusal> {
    for q in quota_claims(&d.ctx.program.policy, before, &d.state) {
        // Without counts (an instance run alone, in memory) there is no cycle to count in.
        let Some(count) = d.facts.quotas.get(&q.id) else { continue };
        let cap = cap(q, count.base);
        if count.used + 1 > cap {
            return Err(Refusal::QuotaExceeded {
                node: q.node.clone(),
                message: q.message.clone(),
                used: count.used,
                cap,
                base: count.base,
            });
        }
    }
    Ok(())
}

/// R3.6: a decision (approve, file, record, complete) on a step that requires another
/// procedure's completed instance about the same matter; a rejection needs none.
pub(super) fn check_prerequisites(d: &Decision, key: &str, def: &ir::Node, action: &Action) -> Result<(), Refusal> {
    if def.prerequisites.is_empty()
        || !matches!(
            action,
            Action::Approve { .. }
                | Action::File { .. }
                | Action::SubmitForm { .. }
                | Action::Complete { .. }
                | Action::EnterVote { .. }
        )
    {
        return Ok(());
    }
    for p in &def.prerequisites {
        let value = eval::eval(&p.value, &d.env(key, None, None)).map_err(eval_refusal)?;
        // The runtime answers every query `needs` asks (with `Nothing` where the store has
        // none); an instance run alone in memory (the simulation) has no others to ask about.
        let Some(found) = d.facts.prerequisites.get(&prerequisite_key(&p.policy, &p.param, &value)).copied() else {
            continue;
        };
        let detail = match found {
            Found::Completed => continue,
            Found::Negative => format!("the `{}` of {} `{value}` ended negative", p.policy, p.param),
            Found::Running => format!("the `{}` of {} `{value}` has not completed", p.policy, p.param),
            Found::Nothing => format!("there is no completed `{}` of {} `{value}`", p.policy, p.param),
        };
        return Err(Refusal::PrerequisiteMissing { node: key.into(), message: p.message.clone(), detail });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn day(n: u32) -> ir::CycleDay {
        ir::CycleDay { month: None, day: n }
    }

    /// R3.7, R5.2: the next chosen day strictly after the anchor's day; a day past the month's
    /// end is its last day (R0.1's reading of a missing corresponding day).
    #[test]
    fn r0_3_calendar_cycles_fall_on_the_next_chosen_day() {
        let months: Vec<u32> = (1..=12).collect();
        assert_eq!(next_day(d("2025-01-01"), &months, &[day(1)]), Some(d("2025-02-01")));
        assert_eq!(next_day(d("2025-01-31"), &months, &[day(31)]), Some(d("2025-02-28")));
        assert_eq!(next_day(d("2024-01-31"), &months, &[day(31)]), Some(d("2024-02-29")));
        assert_eq!(next_day(d("2025-03-10"), &months, &[day(1), day(15)]), Some(d("2025-03-15")));
        assert_eq!(next_day(d("2025-02-14"), &[1, 4, 7, 10], &[day(1)]), Some(d("2025-04-01")));
        assert_eq!(next_day(d("2025-07-01"), &[1, 7], &[day(1)]), Some(d("2026-01-01")));
        let yearly = [ir::CycleDay { month: Some(6), day: 30 }, ir::CycleDay { month: Some(12), day: 20 }];
        assert_eq!(next_day(d("2025-06-30"), &[1], &yearly), Some(d("2025-12-20")));
        assert_eq!(next_day(d("2025-12-20"), &[1], &yearly), Some(d("2026-06-30")));
    }

    #[test]
    fn r0_3_the_next_cycle_id_counts_from_the_first() {
        assert_eq!(next_instance_id("考核-东湖", 2), "考核-东湖~2");
        assert_eq!(next_instance_id("考核-东湖~2", 3), "考核-东湖~3");
        assert_eq!(next_instance_id("a~b", 2), "a~b~2");
    }

    /// R3.7: 10 % of 10 communities is one; of 9, none; 30 % of 10 is three.
    #[test]
    fn r3_7_the_cap_is_the_floor_of_the_share() {
        let q = |share: Value| ir::Quota {
            id: "quota1".into(),
            node: "评定".into(),
            condition: ir::Expr::Lit { value: Value::Bool(true) },
            share,
            message: String::new(),
        };
        let tenth = civicflow_dsl::value::parse_rational("1/10").map(Value::Number).unwrap();
        let thirty = civicflow_dsl::value::parse_rational("3/10").map(Value::Number).unwrap();
        assert_eq!(cap(&q(tenth.clone()), 10), 1);
        assert_eq!(cap(&q(tenth), 9), 0);
        assert_eq!(cap(&q(thirty), 10), 3);
    }
}
