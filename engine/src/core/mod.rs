//! The pure core: `decide(state, command, now) -> events` and `apply(state, event)`.
//!
//! No I/O, no clock, no randomness: everything comes in as arguments (the compiled policy, the
//! working-day calendar, the instant). `decide` works on a copy of the state, applying each event
//! it produces with [`apply`] before deciding the next, so the events it returns are exactly
//! those whose replay reproduces the state it saw — replay is correct by construction.
//!
//! A command produces its own event (an approval, a form, a vote) and then the engine *advances*:
//! it opens every node whose parent is open and whose dependencies are done, skips what can no
//! longer happen, completes phases whose steps are all done, and completes the instance.

mod amounts;
mod awaiting;
mod ballot;
mod binding;
mod breach;
pub mod cycles;
mod join;
mod model;
mod open;
pub mod period;
#[cfg(test)]
mod period_tests;
pub mod personal;
#[cfg(test)]
mod prop;
mod refusal;
mod returns;
mod rules;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_breach;
#[cfg(test)]
mod tests_rules;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use civicflow_dsl::eval::{self, Env, EvalError};
use civicflow_dsl::ir::{self, NodeKind, RefKind, StepKind};
use civicflow_dsl::value::Value;

pub use binding::{bound_office, may_act};
pub use breach::acting_roles;
pub use model::*;
pub use refusal::{local, Refusal, RefusalClass};
pub use returns::{may_do, urgers};

use crate::calendar::Calendar;

/// A compiled policy prepared for running: indexes over its nodes.
#[derive(Clone, Debug)]
pub struct Program {
    pub policy: ir::Policy,
    pub hash: String,
    pub offset: FixedOffset,
    index: HashMap<String, usize>,
    children: HashMap<String, Vec<String>>,
    /// Nodes that wait (through `after`) on a node.
    dependents: HashMap<String, Vec<String>>,
}

impl Program {
    /// Prepares a policy; the time zone must be a fixed offset (`Asia/Shanghai`, `UTC`, `+08:00`).
    pub fn new(policy: ir::Policy, hash: String) -> Result<Program, String> {
        let offset = parse_offset(&policy.timezone)?;
        let index = policy.nodes.iter().enumerate().map(|(i, n)| (n.id.clone(), i)).collect();
        let mut children: HashMap<String, Vec<String>> = HashMap::new();
        let mut dependents: HashMap<String, Vec<String>> = HashMap::new();
        for n in &policy.nodes {
            if let Some(p) = &n.parent {
                children.entry(p.clone()).or_default().push(n.id.clone());
            }
            for d in &n.after {
                dependents.entry(d.node.clone()).or_default().push(n.id.clone());
            }
        }
        Ok(Program { policy, hash, offset, index, children, dependents })
    }

    pub fn node(&self, id: &str) -> Option<&ir::Node> {
        self.index.get(id).and_then(|i| self.policy.nodes.get(*i))
    }

    fn children(&self, id: &str) -> &[String] {
        self.children.get(id).map_or(&[], Vec::as_slice)
    }
}

/// Time zones the engine accepts: IANA names of zones with one fixed offset, or `±HH:MM`.
pub fn parse_offset(tz: &str) -> Result<FixedOffset, String> {
    let hours = match tz {
        "Asia/Shanghai" | "Asia/Chongqing" | "Asia/Harbin" | "Asia/Urumqi" | "PRC" | "Asia/Hong_Kong"
        | "Asia/Macau" | "Asia/Taipei" => Some(8),
        "UTC" | "Etc/UTC" => Some(0),
        _ => None,
    };
    if let Some(h) = hours {
        return FixedOffset::east_opt(h * 3600).ok_or_else(|| format!("bad offset for `{tz}`"));
    }
    let bad = || format!("time zone `{tz}` is not supported; use `Asia/Shanghai`, `UTC` or an offset such as `+08:00`");
    let (sign, rest) = match tz.as_bytes().first() {
        Some(b'+') => (1, &tz[1..]),
        Some(b'-') => (-1, &tz[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let secs = sign * (h.parse::<i32>().map_err(|_| bad())? * 3600 + m.parse::<i32>().map_err(|_| bad())? * 60);
    FixedOffset::east_opt(secs).ok_or_else(bad)
}

/// What `decide` needs besides the state.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub program: &'a Program,
    pub calendar: &'a Calendar,
}

impl State {
    /// The state before the `Started` event.
    pub fn new() -> State {
        State {
            status: Status::Running,
            params: BTreeMap::new(),
            values: BTreeMap::new(),
            nodes: BTreeMap::new(),
            started_at: None,
            version: 0,
            cycle: cycles::CycleState::default(),
            bindings: BTreeMap::new(),
        }
    }
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

/// Replays events from the beginning.
pub fn replay<'e>(events: impl IntoIterator<Item = (&'e Event, DateTime<Utc>)>) -> State {
    let mut s = State::new();
    for (e, at) in events {
        apply(&mut s, e, at);
    }
    s
}

/// Folds one event into the state. Total: an event that does not fit (which `decide` never
/// produces) changes nothing but the version.
pub fn apply(state: &mut State, event: &Event, at: DateTime<Utc>) {
    state.version += 1;
    match event {
        Event::Started { params, values, nodes, cycle } => {
            cycles::apply_started(state, cycle.as_ref());
            state.params = params.clone();
            state.values = values.clone();
            state.started_at = Some(at);
            for (key, def, element) in nodes {
                state.nodes.insert(key.clone(), NodeState::new(def, element.clone()));
            }
        }
        Event::Expanded { def, copies } => {
            for (key, element) in copies {
                state.nodes.insert(key.clone(), NodeState::new(def, Some(element.clone())));
            }
            if let Some(n) = state.nodes.get_mut(def) {
                n.status = NodeStatus::Open;
                n.opened_at = Some(at);
            }
        }
        Event::Opened { node, window, due_at, min_until } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.status = NodeStatus::Open;
                n.opened_at = Some(at);
                n.window = *window;
                n.due_at = *due_at;
                n.min_until = *min_until;
                n.due_awaiting = None;
                n.min_awaiting = None;
                n.window_awaiting = None;
            }
        }
        Event::DeadlineAwaitingCalendar { .. }
        | Event::MinDurationAwaitingCalendar { .. }
        | Event::WindowAwaitingCalendar { .. }
        | Event::CalendarApplied { .. } => awaiting::apply(state, event),
        Event::Skipped { node, .. } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.status = NodeStatus::Skipped;
                n.closed_at = Some(at);
            }
        }
        Event::Acted { node, act } | Event::ObjectionRaised { node, act } | Event::Urged { node, act } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.acts.push(act.clone());
            }
        }
        Event::FormRecorded { node, data } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.form = Some(data.clone());
            }
        }
        Event::VoteRecorded { node, result } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.vote = Some(result.clone());
            }
        }
        Event::Withdrawn { node, principal } => {
            if let Some(n) = state.nodes.get_mut(node) {
                if let Some(i) = n.acts.iter().rposition(|a| a.actor.principal == *principal) {
                    n.acts.remove(i);
                }
            }
        }
        Event::Delegated { node, from, to, role } => {
            if let Some(n) = state.nodes.get_mut(node) {
                let from_actor = n.acts.iter().find(|a| a.actor.principal == *from).map(|a| a.actor.clone());
                let mut actor =
                    from_actor.unwrap_or(Actor { principal: from.clone(), office: String::new(), role: String::new() });
                if let Some(role) = role {
                    actor.role = role.clone();
                }
                n.delegations.insert(to.clone(), actor);
            }
        }
        Event::Completed { node, outcome } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.status = NodeStatus::Done;
                n.outcome = Some(*outcome);
                n.closed_at = Some(at);
            }
        }
        Event::Returned { reset, reopened, .. } => {
            let reset_set: BTreeSet<&String> = reset.iter().collect();
            // Fan-out copies of a reset node are made again when it reopens.
            let copies: Vec<String> = state
                .nodes
                .iter()
                .filter(|(k, n)| n.element.is_some() && reset_set.contains(&n.def) && **k != n.def)
                .map(|(k, _)| k.clone())
                .collect();
            for k in copies {
                state.nodes.remove(&k);
            }
            for key in reset {
                if let Some(n) = state.nodes.get_mut(key) {
                    n.reset();
                }
            }
            for key in reopened {
                if let Some(n) = state.nodes.get_mut(key) {
                    n.status = NodeStatus::Open;
                    n.outcome = None;
                    n.closed_at = None;
                }
            }
        }
        Event::PassedOn { node, .. } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.kept_limit = n.due_at.or(n.kept_limit);
            }
        }
        Event::DeadlineSet { node, due_at } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.due_at = Some(*due_at);
                n.due_awaiting = None;
            }
        }
        Event::Overdue { node, .. } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.overdue = true;
            }
        }
        Event::WindowClosed { node, .. } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.window_closed = true;
            }
        }
        Event::Escalated { node, role, .. } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.escalated_to.push(role.clone());
            }
        }
        Event::Reminded { node, .. } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.reminders_sent += 1;
            }
        }
        Event::Notified { .. } => {}
        Event::Reassigned { node, role, .. } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.reassigned_to = Some(role.clone());
            }
        }
        Event::InstanceCompleted => state.status = Status::Completed,
        Event::InstanceRejected { .. } => state.status = Status::Rejected,
        Event::Cancelled { .. } => state.status = Status::Cancelled,
        Event::NextCycleDue { .. } | Event::NextCycleOpened { .. } | Event::NextCycleRefused { .. } => {
            cycles::apply_next(state, event)
        }
        Event::Bound { role, office, node } => binding::apply_bound(state, role, office, node.as_deref()),
    }
}

impl NodeState {
    fn new(def: &str, element: Option<Value>) -> NodeState {
        NodeState {
            def: def.to_string(),
            element,
            status: NodeStatus::Waiting,
            outcome: None,
            opened_at: None,
            closed_at: None,
            window: None,
            due_at: None,
            min_until: None,
            due_awaiting: None,
            min_awaiting: None,
            window_awaiting: None,
            round: 0,
            acts: Vec::new(),
            form: None,
            vote: None,
            overdue: false,
            window_closed: false,
            reminders_sent: 0,
            escalated_to: Vec::new(),
            reassigned_to: None,
            delegations: BTreeMap::new(),
            kept_limit: None,
            bound: BTreeMap::new(),
        }
    }

    fn reset(&mut self) {
        let fresh = NodeState::new(&self.def, self.element.clone());
        let old = std::mem::replace(self, fresh);
        self.round = old.round + 1;
        returns::carry_limit(&old, self);
    }
}

/// Decides what a command does. Refusals record nothing.
pub fn decide(ctx: Context, state: &State, command: &Command, now: DateTime<Utc>) -> Result<Vec<Event>, Refusal> {
    decide_with_state(ctx, state, command, now).map(|(events, _)| events)
}

/// `decide`, also returning the state after its events (the working copy it applied them to),
/// so the caller need not apply them again.
pub fn decide_with_state(
    ctx: Context,
    state: &State,
    command: &Command,
    now: DateTime<Utc>,
) -> Result<(Vec<Event>, State), Refusal> {
    decide_with_facts(ctx, state, command, now, &cycles::Facts::default())
}

/// `decide_with_state` with what the store knows about other instances (R0.3, R3.6, R3.7): the
/// runtime gathers the [`cycles::Facts`] that [`cycles::needs`] asks for and passes them in.
pub fn decide_with_facts(
    ctx: Context,
    state: &State,
    command: &Command,
    now: DateTime<Utc>,
    facts: &cycles::Facts,
) -> Result<(Vec<Event>, State), Refusal> {
    let mut d = Decision { ctx, state: state.clone(), events: Vec::new(), now, facts };
    match command {
        Command::Start { params, actor } => {
            d.start(params)?;
            d.bind_at_start(actor)?;
        }
        Command::Act { actor, node, action, comment } => {
            d.running()?;
            d.act(actor, node, action, comment.as_deref())?;
            cycles::check_quotas(&d, state)?;
        }
        Command::Fire { node, kind: TimerKind::NextCycle, at } => {
            cycles::fire(&mut d, node, *at)?;
            return Ok((d.events, d.state));
        }
        Command::Fire { node, kind, at } => {
            if d.state.status != Status::Running {
                return Ok((Vec::new(), d.state));
            }
            d.fire(node, *kind, *at)?
        }
        Command::Cancel { reason, .. } => {
            d.running()?;
            if reason.trim().is_empty() {
                return Err(Refusal::ReasonRequired { action: "cancel".into() });
            }
            d.emit(Event::Cancelled { reason: reason.clone() });
        }
        Command::CalendarAdded { year, notice, added_by } => {
            if d.state.status != Status::Running {
                return Ok((Vec::new(), d.state));
            }
            d.calendar_added(*year, notice, added_by)?
        }
    }
    if d.state.status == Status::Running && !d.events.is_empty() {
        d.advance()?;
    }
    Ok((d.events, d.state))
}

/// Timers the instance wants set now, derived from its state.
pub fn pending_timers(ctx: Context, state: &State) -> Vec<Timer> {
    let mut out: Vec<Timer> = cycles::timer(ctx, state).into_iter().collect();
    if state.status != Status::Running {
        return out;
    }
    for (key, n) in &state.nodes {
        if n.status != NodeStatus::Open {
            continue;
        }
        let Some(def) = ctx.program.node(&n.def) else { continue };
        if let Some(due) = n.due_at {
            if !n.overdue {
                out.push(Timer { node: key.clone(), kind: TimerKind::Due, at: due });
                if let Some(at) = reminders(ctx, def, due).get(n.reminders_sent as usize) {
                    out.push(Timer { node: key.clone(), kind: TimerKind::Reminder, at: *at });
                }
            }
        }
        if let (Some(until), NodeKind::Step(StepKind::Publicity)) = (n.min_until, def.kind) {
            out.push(Timer { node: key.clone(), kind: TimerKind::MinDurationEnds, at: until });
        }
        if let Some((_, closes)) = n.window {
            if !n.window_closed && matches!(def.kind, NodeKind::Step(_)) {
                out.push(Timer { node: key.clone(), kind: TimerKind::WindowCloses, at: closes });
            }
        }
    }
    returns::kept_limit_timers(state, &mut out);
    out.sort();
    out
}

/// The instants of a step's reminders before `due`, earliest first.
fn reminders(ctx: Context, def: &ir::Node, due: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let offset = ctx.program.offset;
    let mut at: Vec<DateTime<Utc>> =
        def.reminders.iter().filter_map(|b| period::before(ctx.calendar, offset, due, *b)).collect();
    at.sort();
    at
}

fn eval_refusal(e: EvalError) -> Refusal {
    match e {
        EvalError::Calendar { message } | EvalError::YearNotCovered { message, .. } => Refusal::Calendar { message },
        other => Refusal::Evaluation { message: other.to_string() },
    }
}

/// The start of a local day, as an instant.
fn day_start(offset: FixedOffset, date: NaiveDate) -> Result<DateTime<Utc>, Refusal> {
    period::start_of_day(offset, date)
}

/// Names visible to a node's expressions.
struct NodeEnv<'a> {
    state: &'a State,
    calendar: &'a Calendar,
    offset: FixedOffset,
    element: Option<(&'a str, &'a Value)>,
    form: Option<&'a BTreeMap<String, Value>>,
    vote: Option<&'a BTreeMap<String, Value>>,
}

impl Env for NodeEnv<'_> {
    fn lookup(&self, kind: RefKind, id: &str) -> Option<Value> {
        match kind {
            RefKind::Param => self.state.params.get(id).cloned(),
            RefKind::Value => self.state.values.get(id).cloned(),
            RefKind::Element => self.element.filter(|(v, _)| *v == id).map(|(_, x)| x.clone()),
            RefKind::Field => self.form.and_then(|f| f.get(id).cloned()),
            RefKind::Vote => self.vote.and_then(|v| v.get(id).cloned()),
        }
    }
    fn node_time(&self, node: &str, end: bool) -> Option<NaiveDate> {
        let n = self.state.nodes.get(node)?;
        let at = if end { n.closed_at? } else { n.opened_at? };
        Some(at.with_timezone(&self.offset).date_naive())
    }
    fn node_field(&self, node: &str, field: &str) -> Option<Value> {
        self.state.nodes.get(node)?.form.as_ref()?.get(field).cloned()
    }
    fn add_workdays(&self, date: NaiveDate, n: i64) -> Result<NaiveDate, EvalError> {
        self.calendar.add_workdays(date, n).map_err(period::eval_error)
    }
}

/// A decision in progress: the working copy of the state and the events so far.
struct Decision<'a> {
    ctx: Context<'a>,
    state: State,
    events: Vec<Event>,
    now: DateTime<Utc>,
    facts: &'a cycles::Facts,
}

impl<'a> Decision<'a> {
    fn emit(&mut self, e: Event) {
        apply(&mut self.state, &e, self.now);
        self.events.push(e);
    }

    fn running(&self) -> Result<(), Refusal> {
        if self.state.version == 0 {
            return Err(Refusal::NotStarted);
        }
        match self.state.status {
            Status::Running => Ok(()),
            s => Err(Refusal::InstanceClosed { status: status_word(s).into() }),
        }
    }

    fn env<'s>(
        &'s self,
        key: &str,
        form: Option<&'s BTreeMap<String, Value>>,
        vote: Option<&'s BTreeMap<String, Value>>,
    ) -> NodeEnv<'s> {
        let n = self.state.nodes.get(key);
        let def = n.and_then(|n| self.ctx.program.node(&n.def));
        let element = match (n.and_then(|n| n.element.as_ref()), def.and_then(|d| d.for_each.as_ref())) {
            (Some(v), Some(fe)) => Some((fe.var.as_str(), v)),
            _ => None,
        };
        NodeEnv {
            state: &self.state,
            calendar: self.ctx.calendar,
            offset: self.ctx.program.offset,
            element,
            form,
            vote,
        }
    }

    fn start(&mut self, given: &BTreeMap<String, Value>) -> Result<(), Refusal> {
        if self.state.version > 0 {
            return Err(Refusal::AlreadyStarted);
        }
        let policy = &self.ctx.program.policy;
        for name in given.keys() {
            if !policy.params.iter().any(|p| p.id == *name) {
                let known: Vec<&str> = policy.params.iter().map(|p| p.id.as_str()).collect();
                return Err(Refusal::BadParam {
                    param: name.clone(),
                    problem: format!("this policy has no such parameter (it has {})", known.join(", ")),
                });
            }
        }
        let mut params = BTreeMap::new();
        for p in &policy.params {
            match given.get(&p.id).or(p.default.as_ref()) {
                Some(v) => {
                    rules::check_type(&p.ty, v)
                        .map_err(|problem| Refusal::BadParam { param: p.id.clone(), problem })?;
                    params.insert(p.id.clone(), v.clone());
                }
                None => {
                    return Err(Refusal::BadParam { param: p.id.clone(), problem: format!("is required ({})", p.ty) })
                }
            }
        }
        amounts::check_ranges(policy, &params)?;
        let values = eval::derived_values(policy, &params).map_err(eval_refusal)?;
        amounts::check_amounts(policy, &params, &values)?;
        let nodes = policy.nodes.iter().map(|n| (n.id.clone(), n.id.clone(), None)).collect();
        let cycle = self.facts.link.clone();
        self.emit(Event::Started { params, values, nodes, cycle });
        Ok(())
    }

    /// Opens, skips and completes until nothing changes.
    fn advance(&mut self) -> Result<(), Refusal> {
        loop {
            let mut changed = false;
            let keys: Vec<String> = self.order();
            for key in keys {
                let Some(n) = self.state.nodes.get(&key) else { continue };
                let status = n.status;
                let def_id = n.def.clone();
                let Some(def) = self.ctx.program.node(&def_id) else { continue };
                match status {
                    NodeStatus::Waiting => match self.readiness(&key, def) {
                        Readiness::Wait => {}
                        Readiness::Skip(reason) => {
                            self.emit(Event::Skipped { node: key.clone(), reason });
                            changed = true;
                        }
                        Readiness::Ready => {
                            self.open(&key, def)?;
                            changed = true;
                        }
                    },
                    NodeStatus::Open => {
                        // `due N days after X` is set once X is done.
                        if let (Some(d @ ir::Deadline::AfterDone { node: other, .. }), Due::None) =
                            (&def.deadline, self.state.nodes.get(&key).map_or(Due::None, NodeState::due))
                        {
                            if self.state.nodes.get(other).is_some_and(|o| o.closed_at.is_some()) {
                                match self.deadline(&key, d, self.now)? {
                                    Some(period::PeriodEnd::At(due_at)) => {
                                        self.emit(Event::DeadlineSet { node: key.clone(), due_at });
                                        changed = true;
                                    }
                                    Some(period::PeriodEnd::AwaitingCalendar { year }) => {
                                        let from = self.now;
                                        self.emit(Event::DeadlineAwaitingCalendar { node: key.clone(), year, from });
                                        changed = true;
                                    }
                                    None => {}
                                }
                            }
                        }
                        // Groups (phases, calls, fan-out templates) complete with their members.
                        let is_template =
                            def.for_each.is_some() && self.state.nodes.get(&key).is_some_and(|n| n.element.is_none());
                        if matches!(def.kind, NodeKind::Phase | NodeKind::Call) || is_template {
                            let members = self.members(&key, def, is_template);
                            if members.iter().all(|m| {
                                self.state
                                    .nodes
                                    .get(m)
                                    .is_none_or(|x| matches!(x.status, NodeStatus::Done | NodeStatus::Skipped))
                            }) {
                                self.emit(Event::Completed { node: key.clone(), outcome: Outcome::Done });
                                changed = true;
                            }
                        }
                    }
                    NodeStatus::Done | NodeStatus::Skipped => {}
                }
            }
            if !changed {
                break;
            }
        }
        let top_done = self.ctx.program.policy.nodes.iter().filter(|n| n.parent.is_none()).all(|n| {
            self.state.nodes.get(&n.id).is_some_and(|x| matches!(x.status, NodeStatus::Done | NodeStatus::Skipped))
        });
        if top_done && self.state.status == Status::Running {
            self.emit(Event::InstanceCompleted);
        }
        Ok(())
    }

    /// Runtime keys in declaration order, fan-out copies after their template.
    fn order(&self) -> Vec<String> {
        let mut copies: HashMap<&str, Vec<&String>> = HashMap::new();
        for (k, n) in &self.state.nodes {
            if n.element.is_some() {
                copies.entry(n.def.as_str()).or_default().push(k);
            }
        }
        let mut out = Vec::with_capacity(self.state.nodes.len());
        for n in &self.ctx.program.policy.nodes {
            out.push(n.id.clone());
            if let Some(c) = copies.get(n.id.as_str()) {
                let mut c: Vec<&String> = c.clone();
                c.sort_by_key(|k| copy_index(k));
                out.extend(c.into_iter().cloned());
            }
        }
        out
    }

    fn members(&self, key: &str, def: &ir::Node, is_template: bool) -> Vec<String> {
        if is_template {
            self.state
                .nodes
                .iter()
                .filter(|(k, n)| n.def == def.id && n.element.is_some() && k.as_str() != key)
                .map(|(k, _)| k.clone())
                .collect()
        } else {
            self.ctx.program.children(&def.id).to_vec()
        }
    }

    fn readiness(&self, key: &str, def: &ir::Node) -> Readiness {
        let is_copy = self.state.nodes.get(key).is_some_and(|n| n.element.is_some());
        // A copy waits for its template to open; anything else for its parent.
        let parent = if is_copy { Some(def.id.as_str()) } else { def.parent.as_deref() };
        if let Some(p) = parent {
            match self.state.nodes.get(p).map(|n| n.status) {
                Some(NodeStatus::Open) => {}
                Some(NodeStatus::Skipped) => return Readiness::Skip(format!("`{p}` was skipped")),
                _ => return Readiness::Wait,
            }
        }
        if is_copy {
            return Readiness::Ready;
        }
        if let Some(r) = self.any_of(def) {
            if !matches!(r, Readiness::Ready) {
                return r;
            }
        }
        for dep in &def.after {
            let Some(d) = self.state.nodes.get(&dep.node) else { return Readiness::Wait };
            match (d.status, dep.outcome, d.outcome) {
                (NodeStatus::Done, None, _) => {}
                // A step skipped by its own `when` is passed through; one on a branch not taken
                // takes what waits for it along (R3.4: the other branch of 社区研判 never runs).
                (NodeStatus::Skipped, None, _) if self.not_taken(&dep.node) => {
                    return Readiness::Skip(format!("`{}` is on a branch not taken", dep.node))
                }
                (NodeStatus::Skipped, None, _) => {}
                (NodeStatus::Done, Some(want), Some(got)) => {
                    let ok = matches!(
                        (want, got),
                        (ir::Outcome::Approved, Outcome::Approved) | (ir::Outcome::Rejected, Outcome::Rejected)
                    );
                    if !ok {
                        return Readiness::Skip(format!("`{}` was not {}", dep.node, outcome_word(want)));
                    }
                }
                (NodeStatus::Skipped, Some(want), _) | (NodeStatus::Done, Some(want), None) => {
                    return Readiness::Skip(format!("`{}` was not {}", dep.node, outcome_word(want)))
                }
                _ => return Readiness::Wait,
            }
        }
        Readiness::Ready
    }

    /// Whether a skipped node lies on a branch not taken: it waited for an outcome that did not
    /// happen, for such a node, or sits in such a phase. Not a node skipped by its own `when`.
    fn not_taken(&self, key: &str) -> bool {
        let Some(n) = self.state.nodes.get(key).filter(|n| n.status == NodeStatus::Skipped) else { return false };
        let Some(def) = self.ctx.program.node(&n.def) else { return false };
        if def.parent.as_deref().is_some_and(|p| self.not_taken(p)) {
            return true;
        }
        def.after.iter().any(|dep| {
            let Some(d) = self.state.nodes.get(&dep.node) else { return false };
            match (dep.outcome, d.status, d.outcome) {
                (Some(_), NodeStatus::Skipped, _) => true,
                (Some(want), NodeStatus::Done, got) => !matches!(
                    (want, got),
                    (ir::Outcome::Approved, Some(Outcome::Approved)) | (ir::Outcome::Rejected, Some(Outcome::Rejected))
                ),
                (None, NodeStatus::Skipped, _) => self.not_taken(&dep.node),
                _ => false,
            }
        })
    }

    fn act(&mut self, actor: &Actor, key: &str, action: &Action, comment: Option<&str>) -> Result<(), Refusal> {
        let Some(n) = self.state.nodes.get(key) else {
            return Err(Refusal::UnknownStep { node: key.to_string() });
        };
        let def_id = n.def.clone();
        let Some(def) = self.ctx.program.node(&def_id) else {
            return Err(Refusal::UnknownStep { node: key.to_string() });
        };
        // After `on breach reassign R` the step is R's alone (提级办理).
        let running = breach::as_running(def, n);
        let def = &*running;
        let NodeKind::Step(kind) = def.kind else {
            return Err(Refusal::WrongAction {
                node: key.into(),
                kind: "phase".into(),
                action: action.name().into(),
                allowed: vec![],
            });
        };
        // Entitlement first: an office that may not act learns nothing more (403).
        let acting = self.entitled(key, def, actor, action)?;
        returns::allowed(key, def, n, &acting, action)?;
        self.office_bound(key, def, &acting)?; // R6.1: the role's office for this instance
        if n.status != NodeStatus::Open || (def.for_each.is_some() && n.element.is_none()) {
            let status = if def.for_each.is_some() && n.element.is_none() {
                "a group of copies (act on one of them)".to_string()
            } else {
                status_word_node(n.status).to_string()
            };
            return Err(Refusal::StepNotOpen { node: key.into(), status });
        }
        self.in_window(key)?;
        cycles::check_prerequisites(self, key, def, action)?;
        let act = |name: &str, text: Option<String>| Act {
            actor: acting.clone(),
            action: name.to_string(),
            at: self.now,
            text,
        };
        let text = comment.map(str::to_string);
        match action {
            Action::Urge { message } => {
                let a = act("urge", message.clone().or(text));
                self.emit(Event::Urged { node: key.into(), act: a });
                return Ok(());
            }
            Action::Delegate { to } => {
                if to.trim().is_empty() || *to == acting.principal {
                    return Err(Refusal::BadField {
                        node: key.into(),
                        field: "to".into(),
                        problem: "name another principal".into(),
                    });
                }
                let role = Some(acting.role.clone());
                self.emit(Event::Delegated { node: key.into(), from: acting.principal.clone(), to: to.clone(), role });
                return Ok(());
            }
            Action::Withdraw => return self.withdraw(key, &acting),
            Action::ReturnTo { target, reason } => return self.return_to(key, target, reason),
            _ => {}
        }
        rules::allowed(kind, action).map_err(|allowed| Refusal::WrongAction {
            node: key.into(),
            kind: kind_word(kind).into(),
            action: action.name().into(),
            allowed,
        })?;
        match action {
            Action::SubmitForm { data } => {
                let data = rules::check_form(def, data).map_err(|(field, problem)| Refusal::BadField {
                    node: key.into(),
                    field,
                    problem,
                })?;
                for r in &def.requires {
                    let ok = eval::eval(&r.condition, &self.env(key, Some(&data), None)).map_err(eval_refusal)?;
                    if ok != Value::Bool(true) {
                        return Err(Refusal::RuleFailed { node: key.into(), message: r.message.clone() });
                    }
                }
                self.emit(Event::FormRecorded { node: key.into(), data });
                self.bind_from_form(key)?;
                if matches!(kind, StepKind::Task | StepKind::Meeting) {
                    self.min_elapsed(key)?;
                    self.emit(Event::Completed { node: key.into(), outcome: Outcome::Done });
                }
            }
            Action::Complete { report } => {
                self.form_first(key, def)?;
                self.min_elapsed(key)?;
                self.emit(Event::Acted { node: key.into(), act: act("complete", Some(report.clone())) });
                self.emit(Event::Completed { node: key.into(), outcome: Outcome::Done });
            }
            Action::Approve { comment: c } => {
                self.not_twice(key, &acting, "approve")?;
                self.form_first(key, def)?;
                if def.rule == Some(ir::ApprovalRule::Sequence) {
                    if let Some(next) = rules::next_in_sequence(def, self.node_acts(key)) {
                        if next != acting.role {
                            return Err(Refusal::NotYourTurn {
                                node: key.into(),
                                role: acting.role.clone(),
                                next: next.into(),
                            });
                        }
                    }
                }
                self.min_elapsed(key)?;
                for r in &def.approve_requires {
                    let ok = eval::eval(&r.condition, &self.env(key, None, None)).map_err(eval_refusal)?;
                    if ok != Value::Bool(true) {
                        return Err(Refusal::RuleFailed { node: key.into(), message: r.message.clone() });
                    }
                }
                self.emit(Event::Acted { node: key.into(), act: act("approve", c.clone().or(text)) });
                if let Some(outcome) = rules::approval_outcome(def, self.node_acts(key)) {
                    self.finish_approval(key, def, outcome)?;
                }
            }
            Action::Reject { reason } => {
                if reason.trim().is_empty() {
                    return Err(Refusal::ReasonRequired { action: "reject".into() });
                }
                self.not_twice(key, &acting, "reject")?;
                self.form_first(key, def)?;
                self.emit(Event::Acted { node: key.into(), act: act("reject", Some(reason.clone())) });
                if let Some(outcome) = rules::approval_outcome(def, self.node_acts(key)) {
                    self.finish_approval(key, def, outcome)?;
                }
            }
            Action::File { comment: c } => {
                self.not_twice(key, &acting, "file")?;
                self.form_first(key, def)?;
                self.min_elapsed(key)?;
                self.emit(Event::Acted { node: key.into(), act: act("file", c.clone().or(text)) });
                if rules::all_roles_did(def, self.node_acts(key), "file") {
                    self.emit(Event::Completed { node: key.into(), outcome: Outcome::Filed });
                }
            }
            Action::GiveOpinion { opinion } => {
                self.not_twice(key, &acting, "opinion")?;
                self.min_elapsed(key)?;
                self.emit(Event::Acted { node: key.into(), act: act("opinion", Some(opinion.clone())) });
                if rules::all_roles_did(def, self.node_acts(key), "opinion") {
                    self.emit(Event::Completed { node: key.into(), outcome: Outcome::Done });
                }
            }
            Action::EnterVote { counts } => {
                self.min_elapsed(key)?;
                let result = self.vote(key, def, counts)?;
                self.emit(Event::VoteRecorded { node: key.into(), result });
                self.emit(Event::Completed { node: key.into(), outcome: Outcome::Done });
            }
            Action::RaiseObjection { objection } => {
                if objection.trim().is_empty() {
                    return Err(Refusal::ReasonRequired { action: "raise_objection".into() });
                }
                self.emit(Event::ObjectionRaised { node: key.into(), act: act("objection", Some(objection.clone())) });
                if let Some(target) = def.on_objection.clone() {
                    self.do_return(key, &target, &format!("objection: {objection}"))?;
                }
            }
            Action::Urge { .. } | Action::Delegate { .. } | Action::Withdraw | Action::ReturnTo { .. } => {}
        }
        Ok(())
    }

    fn node_acts(&self, key: &str) -> &[Act] {
        self.state.nodes.get(key).map_or(&[], |n| n.acts.as_slice())
    }

    /// The actor as recorded: itself if its role is named in `by`, or the delegating actor's
    /// role if the step was delegated to it.
    fn entitled(&self, key: &str, def: &ir::Node, actor: &Actor, action: &Action) -> Result<Actor, Refusal> {
        if def.roles.contains(&actor.role) {
            return Ok(actor.clone());
        }
        let delegated = self.state.nodes.get(key).and_then(|n| n.delegations.get(&actor.principal));
        // A delegation recorded without its role (before events carried it) hands over nothing.
        if let Some(from) = delegated.filter(|from| def.roles.contains(&from.role)) {
            return Ok(Actor {
                principal: actor.principal.clone(),
                office: actor.office.clone(),
                role: from.role.clone(),
            });
        }
        // Objections to a public notice and urging come from outside the listed roles.
        // Returns and urging are narrowed to the roles the policy names by `returns::allowed`.
        let open_to_all =
            matches!(action, Action::RaiseObjection { .. } | Action::Urge { .. } | Action::ReturnTo { .. })
                && self.ctx.program.policy.roles.iter().any(|r| r.name == actor.role);
        if open_to_all {
            return Ok(actor.clone());
        }
        Err(Refusal::NotEntitled { node: key.into(), role: actor.role.clone(), allowed: def.roles.clone() })
    }

    fn in_window(&self, key: &str) -> Result<(), Refusal> {
        // The step's own window and those of the phases around it.
        let offset = self.ctx.program.offset;
        let mut cur = Some(key.to_string());
        while let Some(k) = cur {
            let Some(n) = self.state.nodes.get(&k) else { break };
            if let Some(w) = n.window_awaiting {
                return Err(Refusal::WindowAwaitingCalendar { node: key.into(), year: w.year });
            }
            if let Some((from, to)) = n.window {
                if self.now < from {
                    return Err(Refusal::WindowNotOpen { node: key.into(), opens: local(from, offset) });
                }
                if self.now >= to {
                    return Err(Refusal::WindowClosed { node: key.into(), closed: local(to, offset) });
                }
            }
            let is_copy = n.element.is_some() && k != n.def;
            cur = if is_copy {
                Some(n.def.clone())
            } else {
                self.ctx.program.node(&n.def).and_then(|d| d.parent.clone())
            };
        }
        Ok(())
    }

    /// A step whose form has required fields is completed or decided only once the form, and so
    /// its rules, are recorded (R2.13 on 委员备案, R3.1 on 准入审批).
    fn form_first(&self, key: &str, def: &ir::Node) -> Result<(), Refusal> {
        if def.form.iter().any(|f| !f.optional) && self.state.nodes.get(key).is_some_and(|n| n.form.is_none()) {
            return Err(Refusal::BadField {
                node: key.into(),
                field: def.form.iter().map(|f| f.name.clone()).collect::<Vec<_>>().join(", "),
                problem: "submit the form first".into(),
            });
        }
        Ok(())
    }

    fn min_elapsed(&self, key: &str) -> Result<(), Refusal> {
        if let Some(w) = self.state.nodes.get(key).and_then(|n| n.min_awaiting) {
            return Err(Refusal::MinDurationAwaitingCalendar { node: key.into(), year: w.year });
        }
        if let Some(until) = self.state.nodes.get(key).and_then(|n| n.min_until) {
            if self.now < until {
                return Err(Refusal::MinDurationNotElapsed {
                    node: key.into(),
                    until: local(until, self.ctx.program.offset),
                });
            }
        }
        Ok(())
    }

    fn not_twice(&self, key: &str, actor: &Actor, _what: &str) -> Result<(), Refusal> {
        let done = self.node_acts(key).iter().any(|a| {
            matches!(a.action.as_str(), "approve" | "reject" | "file" | "opinion")
                && (a.actor.principal == actor.principal || a.actor.role == actor.role)
        });
        if done {
            return Err(Refusal::AlreadyActed { node: key.into(), principal: actor.principal.clone() });
        }
        Ok(())
    }

    fn finish_approval(&mut self, key: &str, def: &ir::Node, outcome: Outcome) -> Result<(), Refusal> {
        self.emit(Event::Completed { node: key.into(), outcome });
        if outcome == Outcome::Rejected {
            match &def.on_rejected {
                Some(ir::OnRejected::Return { node }) => {
                    let node = node.clone();
                    self.do_return(key, &node, "rejected")?;
                }
                Some(ir::OnRejected::End) => self.emit(Event::InstanceRejected { node: key.into() }),
                None => {}
            }
        }
        Ok(())
    }

    fn withdraw(&mut self, key: &str, actor: &Actor) -> Result<(), Refusal> {
        let acts = self.node_acts(key);
        let Some(last_own) = acts.iter().rposition(|a| a.actor.principal == actor.principal && a.action != "urge")
        else {
            return Err(Refusal::NothingToWithdraw { node: key.into(), principal: actor.principal.clone() });
        };
        if acts.iter().skip(last_own + 1).any(|a| a.action != "urge") {
            return Err(Refusal::TooLateToWithdraw { node: key.into() });
        }
        self.emit(Event::Withdrawn { node: key.into(), principal: actor.principal.clone() });
        Ok(())
    }

    fn return_to(&mut self, key: &str, target: &str, reason: &str) -> Result<(), Refusal> {
        if reason.trim().is_empty() {
            return Err(Refusal::ReasonRequired { action: "return_to".into() });
        }
        if self.ctx.program.node(target).is_none() {
            return Err(Refusal::UnknownStep { node: target.into() });
        }
        self.do_return(key, target, reason)
    }

    /// A return by hand or on an objection or rejection: out of an `owned` step it is passing
    /// the matter on (R3.5), then [`Self::reset_to`].
    fn do_return(&mut self, from: &str, target: &str, reason: &str) -> Result<(), Refusal> {
        self.reset_to_checked(from, target)?;
        self.pass_on(from, target);
        self.reset_to(from, target, reason)
    }

    /// Refuses a return to a step that does not come before `from`.
    fn reset_to_checked(&self, from: &str, target: &str) -> Result<(), Refusal> {
        let from_def = self.state.nodes.get(from).map(|n| n.def.clone()).unwrap_or_else(|| from.to_string());
        if from_def != target && !self.after_set(target).contains(&from_def) {
            return Err(Refusal::NotEarlier { node: from.into(), target: target.into() });
        }
        Ok(())
    }

    /// Reopens `target`: what came after it waits again, the phases that hold it reopen.
    fn reset_to(&mut self, from: &str, target: &str, reason: &str) -> Result<(), Refusal> {
        self.reset_to_checked(from, target)?;
        let after = self.after_set(target);
        let program = self.ctx.program;
        let mut ancestors = Vec::new();
        let mut cur = program.node(target).and_then(|n| n.parent.clone());
        while let Some(p) = cur {
            cur = program.node(&p).and_then(|n| n.parent.clone());
            ancestors.push(p);
        }
        let mut reset: Vec<String> = vec![target.to_string()];
        reset.extend(
            after.into_iter().filter(|k| self.state.nodes.get(k).is_some_and(|n| n.status != NodeStatus::Waiting)),
        );
        // Copies of a fan-out node that is reset are dropped by `apply` and made again.
        let reopened: Vec<String> = ancestors
            .into_iter()
            .filter(|a| self.state.nodes.get(a).is_some_and(|n| n.status == NodeStatus::Done))
            .collect();
        self.emit(Event::Returned { from: from.into(), to: target.into(), reason: reason.into(), reset, reopened });
        Ok(())
    }

    /// Everything that (transitively) waits for `target` or for a phase holding it.
    fn after_set(&self, target: &str) -> BTreeSet<String> {
        let program = self.ctx.program;
        let mut ancestors = Vec::new();
        let mut cur = program.node(target).and_then(|n| n.parent.clone());
        while let Some(p) = cur {
            cur = program.node(&p).and_then(|n| n.parent.clone());
            ancestors.push(p);
        }
        let mut after: BTreeSet<String> = BTreeSet::new();
        let mut queue: Vec<String> = vec![target.to_string()];
        queue.extend(ancestors.iter().cloned());
        while let Some(x) = queue.pop() {
            for d in program.dependents.get(&x).into_iter().flatten() {
                if after.insert(d.clone()) {
                    queue.push(d.clone());
                }
            }
            if !ancestors.contains(&x) {
                for c in program.children(&x) {
                    if after.insert(c.clone()) {
                        queue.push(c.clone());
                    }
                }
            }
        }
        after
    }

    fn vote(&self, key: &str, def: &ir::Node, counts: &VoteCounts) -> Result<VoteResult, Refusal> {
        let Some(rules) = &def.vote else {
            return Err(Refusal::Evaluation { message: format!("`{key}` has no vote rules") });
        };
        rules::vote(key, rules, counts, &self.env(key, None, None))
    }

    fn fire(&mut self, key: &str, kind: TimerKind, at: DateTime<Utc>) -> Result<(), Refusal> {
        // Only a timer the instance asks for, once it is due: delivered early or made up, it is spent.
        let timer = Timer { node: key.into(), kind, at };
        if self.now < at || !pending_timers(self.ctx, &self.state).contains(&timer) {
            return Ok(());
        }
        let Some(n) = self.state.nodes.get(key) else { return Ok(()) };
        if kind == TimerKind::Due && n.status == NodeStatus::Waiting {
            self.breach_kept_limit(key, at);
            return Ok(());
        }
        if n.status != NodeStatus::Open {
            return Ok(()); // the step moved on: the timer is spent
        }
        let Some(def) = self.ctx.program.node(&n.def) else { return Ok(()) };
        let (due_at, overdue, min_until, window) = (n.due_at, n.overdue, n.min_until, n.window);
        match kind {
            TimerKind::Due => {
                let Some(due) = due_at else { return Ok(()) };
                if overdue || due != at || self.now < due {
                    return Ok(());
                }
                self.breach(key, def, due)?;
            }
            TimerKind::Reminder => {
                let sent = self.state.nodes.get(key).map_or(0, |n| n.reminders_sent as usize);
                if let Some(due) = due_at {
                    let next = reminders(self.ctx, def, due).get(sent).copied();
                    if !overdue && next == Some(at) && self.now >= at {
                        self.emit(Event::Reminded { node: key.into(), due_at: due });
                    }
                }
            }
            TimerKind::MinDurationEnds => {
                if min_until == Some(at) && def.kind == NodeKind::Step(StepKind::Publicity) {
                    self.emit(Event::Completed { node: key.into(), outcome: Outcome::Done });
                }
            }
            TimerKind::NextCycle => {} // decided by `cycles::fire`
            TimerKind::WindowCloses => {
                let closed = self.state.nodes.get(key).is_some_and(|n| n.window_closed);
                if window.map(|w| w.1) == Some(at) && !closed {
                    self.emit(Event::WindowClosed { node: key.into(), at });
                    // The step can no longer be done: whatever its deadline, this is the breach.
                    if !overdue {
                        self.breach(key, def, at)?;
                    }
                }
            }
        }
        Ok(())
    }
}

enum Readiness {
    Wait,
    Ready,
    Skip(String),
}

fn copy_index(key: &str) -> usize {
    key.rsplit_once('[').and_then(|(_, r)| r.trim_end_matches(']').parse().ok()).unwrap_or(0)
}

fn date_of(v: Value) -> Result<NaiveDate, Refusal> {
    match v {
        Value::Date(d) => Ok(d),
        other => Err(Refusal::Evaluation { message: format!("`{other}` is not a date") }),
    }
}

fn outcome_word(o: ir::Outcome) -> &'static str {
    match o {
        ir::Outcome::Approved => "approved",
        ir::Outcome::Rejected => "rejected",
    }
}

pub fn status_word(s: Status) -> &'static str {
    match s {
        Status::Running => "running",
        Status::Completed => "completed",
        Status::Rejected => "ended by a rejection",
        Status::Cancelled => "cancelled",
    }
}

fn status_word_node(s: NodeStatus) -> &'static str {
    match s {
        NodeStatus::Waiting => "waiting for earlier steps",
        NodeStatus::Open => "open",
        NodeStatus::Done => "already done",
        NodeStatus::Skipped => "skipped",
    }
}

pub fn kind_word(k: StepKind) -> &'static str {
    match k {
        StepKind::Task => "task",
        StepKind::Approval => "approval",
        StepKind::Filing => "filing",
        StepKind::Consultation => "consultation",
        StepKind::Publicity => "publicity",
        StepKind::Vote => "vote",
        StepKind::Meeting => "meeting",
    }
}
