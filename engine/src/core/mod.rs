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

mod act;
mod advance;
mod amounts;
mod approvers;
mod awaiting;
mod ballot;
mod binding;
mod breach;
mod copies;
mod correct;
pub mod cycles;
mod extend;
mod fire;
mod join;
mod migrate;
mod model;
mod nodes;
mod open;
mod open_steps;
pub mod period;
#[cfg(test)]
mod period_tests;
pub mod personal;
#[cfg(test)]
mod prop;
mod refusal;
mod returns;
mod rules;
mod suspend;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_advance;
#[cfg(test)]
mod tests_breach;
#[cfg(test)]
mod tests_rules;
mod transfer;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use civicflow_dsl::eval::{self, Env, EvalError};
use civicflow_dsl::ir::{self, NodeKind, RefKind, StepKind};
use civicflow_dsl::value::Value;

pub use binding::{bound_office, may_act};
pub use breach::acting_roles;
pub use migrate::{migration_map, whole_changes, MigrationMap, WholeChanges};
pub use model::*;
pub use nodes::Nodes;
pub use open_steps::{open_step_changes, open_steps, responsible, OpenStep, Reader};
pub use refusal::{local, Refusal, RefusalClass};
pub use returns::{may_do, urgers};

use crate::calendar::Calendar;
use advance::{copy_index, Readiness};

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
    /// The nodes whose turn in the advance reads a node (issue 10.2): what waits on it through
    /// `after` or `after any`, its children, its parent, and what is `due … after` it.
    watchers: HashMap<String, Vec<String>>,
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
        let mut watchers: HashMap<String, Vec<String>> = HashMap::new();
        let mut watch = |node: &str, reader: &str| {
            let readers = watchers.entry(node.to_string()).or_default();
            if !readers.iter().any(|r| r == reader) {
                readers.push(reader.to_string());
            }
        };
        for n in &policy.nodes {
            for d in n.after.iter().chain(&n.after_any) {
                watch(&d.node, &n.id);
            }
            if let Some(p) = &n.parent {
                watch(p, &n.id);
                watch(&n.id, p);
            }
            if let Some(ir::Deadline::AfterDone { node, .. }) = &n.deadline {
                watch(node, &n.id);
            }
        }
        Ok(Program { policy, hash, offset, index, children, dependents, watchers })
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    fn watchers(&self, id: &str) -> &[String] {
        self.watchers.get(id).map_or(&[], Vec::as_slice)
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
            nodes: Nodes::new(),
            started_at: None,
            version: 0,
            cycle: cycles::CycleState::default(),
            bindings: BTreeMap::new(),
            suspended: None,
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
        Event::ExtensionRequested { node, amount, reason } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.extension_asked = Some(ExtensionAsked { amount: *amount, reason: reason.clone(), at });
            }
        }
        Event::ExtensionRejected { node, .. } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.extension_asked = None;
            }
        }
        Event::Extended { node, to, amount, .. } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.extension_asked = None;
                n.due_at = Some(*to);
                n.extended = n.extended.saturating_add(*amount);
                // A new deadline: its reminders are sent again; an owner's limit moves with it.
                n.reminders_sent = 0;
                if n.kept_limit.is_some() {
                    n.kept_limit = Some(*to);
                }
            }
        }
        Event::ApproverAdded { node, role, .. } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.removed_roles.retain(|r| r != role);
                n.added_roles.push(role.clone());
            }
        }
        Event::ApproverRemoved { node, role, .. } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.added_roles.retain(|r| r != role);
                n.removed_roles.push(role.clone());
            }
        }
        Event::Transferred { node, role, to, .. } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.bound.insert(role.clone(), to.clone());
            }
        }
        Event::CopiedTo { node, office, message } => {
            if let Some(n) = state.nodes.get_mut(node) {
                n.copies.insert(office.clone(), CarbonCopy { at, message: message.clone(), read: None });
            }
        }
        Event::CopyRead { node, office, principal } => {
            if let Some(c) = state.nodes.get_mut(node).and_then(|n| n.copies.get_mut(office)) {
                c.read = Some((principal.clone(), at));
            }
        }
        Event::Migrated { renamed, removed, added, params, values, .. } => {
            migrate::apply_migrated(state, renamed, removed, added, params, values)
        }
        Event::Corrected { params, values, steps, .. } => {
            for c in params {
                state.params.insert(c.param.clone(), c.to.clone());
            }
            state.values = values.clone();
            for s in steps {
                if let Some(n) = state.nodes.get_mut(&s.node) {
                    if s.window.is_some() {
                        n.window = s.window;
                    }
                    if s.due_at.is_some() {
                        n.due_at = s.due_at;
                        // A new deadline: its reminders are sent again.
                        n.reminders_sent = 0;
                    }
                    if s.min_until.is_some() {
                        n.min_until = s.min_until;
                    }
                }
            }
        }
        Event::Suspended { reason } => {
            state.suspended = Some(Suspension { since: at, reason: reason.clone() });
        }
        Event::Resumed { deadlines, waiting, .. } => {
            state.suspended = None;
            for m in deadlines {
                if let Some(n) = state.nodes.get_mut(&m.node) {
                    if n.status == NodeStatus::Open {
                        n.due_at = Some(m.to);
                    }
                    if n.kept_limit.is_some() {
                        n.kept_limit = Some(m.to);
                    }
                }
            }
            for w in waiting {
                if let Some(a) = state.nodes.get_mut(&w.node).and_then(|n| n.due_awaiting.as_mut()) {
                    a.extra = a.extra.saturating_add(w.amount);
                }
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
            extended: 0,
            added_roles: Vec::new(),
            removed_roles: Vec::new(),
            copies: BTreeMap::new(),
            extension_asked: None,
        }
    }

    fn reset(&mut self) {
        let fresh = NodeState::new(&self.def, self.element.clone());
        let old = std::mem::replace(self, fresh);
        self.round = old.round + 1;
        self.copies = old.copies.clone();
        // A transfer (issue 11.2) is not carried: a return that resets the step sends the matter
        // back to where it is assigned again (民生办分流 names the department anew).
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
    decide_inner(ctx, state, command, now, facts, false)
}

/// `decide`, advancing by the first-written scan: the oracle the property tests hold the
/// incremental advance to.
#[cfg(test)]
pub(crate) fn decide_by_scan(
    ctx: Context,
    state: &State,
    command: &Command,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Refusal> {
    decide_inner(ctx, state, command, now, &cycles::Facts::default(), true).map(|(events, _)| events)
}

fn decide_inner(
    ctx: Context,
    state: &State,
    command: &Command,
    now: DateTime<Utc>,
    facts: &cycles::Facts,
    by_scan: bool,
) -> Result<(Vec<Event>, State), Refusal> {
    let mut d = Decision { ctx, state: state.clone(), events: Vec::new(), now, facts, by_scan };
    match command {
        Command::Start { params, actor } => {
            d.start(params)?;
            d.bind_at_start(actor)?;
        }
        // 已阅 acts on nothing: a copy is read whatever became of the instance (issue 11.2).
        Command::Act { actor, node, action: Action::MarkRead, .. } => d.mark_read(actor, node)?,
        Command::Act { actor, node, action, comment } => {
            d.running()?;
            // Issue 11.3: nothing is acted on while suspended.
            if let Some(s) = &d.state.suspended {
                return Err(Refusal::Suspended { since: s.since, reason: s.reason.clone() });
            }
            d.act(actor, node, action, comment.as_deref())?;
            cycles::check_quotas(&d, state)?;
        }
        Command::Fire { node, kind: TimerKind::NextCycle, at } => {
            cycles::fire(&mut d, node, *at)?;
            return Ok((d.events, d.state));
        }
        Command::Fire { node, kind, at } => {
            // While suspended the deadline and reminder timers are not pending, so `fire` spends
            // them; a window still closes on its date (issue 11.3).
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
        Command::Suspend { actor, reason } => d.suspend(actor, reason)?,
        Command::Correct { actor, params, reason } => d.correct(actor, params, reason)?,
        // Who migrates is the event's actor; the plan decides what moves.
        Command::Migrate { map, .. } => d.migrate(map)?,
        Command::Resume { actor, reason } => d.resume(actor, reason)?,
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
        node_timers(ctx, key, n, state.suspended.is_some(), &mut out);
    }
    out.sort();
    out
}

/// The timers one node of a running instance wants: they depend on that node's state alone, and
/// on whether the instance is suspended (no deadline runs then, issue 11.3).
fn node_timers(ctx: Context, key: &str, n: &NodeState, suspended: bool, out: &mut Vec<Timer>) {
    // A step passed on keeps its owner's limit while it waits (R3.5); no deadline runs while
    // the instance is suspended (issue 11.3).
    if let (NodeStatus::Waiting, Some(at), false, false) = (n.status, n.kept_limit, n.overdue, suspended) {
        out.push(Timer { node: key.to_string(), kind: TimerKind::Due, at });
    }
    if n.status != NodeStatus::Open {
        return;
    }
    let Some(def) = ctx.program.node(&n.def) else { return };
    if let Some(due) = n.due_at {
        if !n.overdue && !suspended {
            out.push(Timer { node: key.to_string(), kind: TimerKind::Due, at: due });
            if let Some(at) = reminders(ctx, def, due).get(n.reminders_sent as usize) {
                out.push(Timer { node: key.to_string(), kind: TimerKind::Reminder, at: *at });
            }
        }
    }
    if let (Some(until), NodeKind::Step(StepKind::Publicity)) = (n.min_until, def.kind) {
        out.push(Timer { node: key.to_string(), kind: TimerKind::MinDurationEnds, at: until });
    }
    if let Some((_, closes)) = n.window {
        if !n.window_closed && matches!(def.kind, NodeKind::Step(_)) {
            out.push(Timer { node: key.to_string(), kind: TimerKind::WindowCloses, at: closes });
        }
    }
}

/// What a commit changes in an instance's timers (issue 10.2): the nodes whose timers differ
/// between `before` and `after`, and the timers those nodes want now (sorted). A node's timers
/// depend on its own state only, so while the instance's status stays, only the nodes the
/// persistent map tells apart are looked at (O(changed), not O(nodes)); the next-cycle timer
/// (`~cycle`) is always compared.
pub fn timer_changes(ctx: Context, before: &State, after: &State) -> (Vec<String>, Vec<Timer>) {
    // A suspension withdraws every node's deadline and a resumption gives them back: all nodes.
    let (old, new) = if before.status == after.status && before.suspended.is_some() == after.suspended.is_some() {
        let keys = before.nodes.changed_keys(&after.nodes);
        let some = |state: &State| {
            let mut out: Vec<Timer> = cycles::timer(ctx, state).into_iter().collect();
            if state.status == Status::Running {
                for key in &keys {
                    if let Some(n) = state.nodes.get(key) {
                        node_timers(ctx, key, n, state.suspended.is_some(), &mut out);
                    }
                }
            }
            out
        };
        (some(before), some(after))
    } else {
        (pending_timers(ctx, before), pending_timers(ctx, after))
    };
    diff_timers(old, new)
}

/// The nodes whose timers differ, and the new timers of those nodes (sorted).
fn diff_timers(old: Vec<Timer>, new: Vec<Timer>) -> (Vec<String>, Vec<Timer>) {
    let by_node = |timers: Vec<Timer>| {
        let mut m: BTreeMap<String, Vec<Timer>> = BTreeMap::new();
        for t in timers {
            m.entry(t.node.clone()).or_default().push(t);
        }
        for v in m.values_mut() {
            v.sort();
        }
        m
    };
    let (old, new) = (by_node(old), by_node(new));
    let changed: BTreeSet<&String> = old.keys().chain(new.keys()).filter(|k| old.get(*k) != new.get(*k)).collect();
    let timers = changed.iter().flat_map(|k| new.get(*k).cloned().unwrap_or_default()).collect();
    (changed.into_iter().cloned().collect(), timers)
}

/// [`timer_changes`] the first way: every node's timers, before and after (the property
/// tests' oracle).
#[cfg(test)]
pub(crate) fn timer_changes_by_scan(ctx: Context, before: &State, after: &State) -> (Vec<String>, Vec<Timer>) {
    diff_timers(pending_timers(ctx, before), pending_timers(ctx, after))
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
    /// Advance by the first-written scan (the property tests' oracle; never outside tests).
    by_scan: bool,
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
