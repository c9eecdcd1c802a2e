//! An in-memory run of one instance on a simulated clock: the pure core plus a timer queue.
//!
//! Scenario tests, property tests and rehearsals drive a procedure from start to end with it.
//! It is what the durable runtime does, minus storage: decide, apply, fire due timers in order.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use civicflow_dsl::value::Value;

use crate::calendar::Calendar;
use crate::core::{self, Action, Actor, Command, Context, Event, Program, Refusal, State};

/// One instance running in memory.
pub struct Simulation {
    pub program: Program,
    pub calendar: Calendar,
    pub state: State,
    /// Every event with the instant it happened.
    pub history: Vec<(Event, DateTime<Utc>)>,
    pub now: DateTime<Utc>,
    /// The instance's id (`sim` unless this is a later cycle): the next cycle's id is made from it.
    pub id: String,
    /// For a later cycle: its number and the instance of the cycle before (R0.3).
    link: Option<core::cycles::CycleLink>,
}

#[derive(Debug)]
pub enum SimError {
    Compile(String),
    Calendar(String),
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::Compile(m) | SimError::Calendar(m) => f.write_str(m),
        }
    }
}

impl Simulation {
    /// Compiles `source` and sets the clock to `now` (local time in the policy's zone).
    pub fn new(source: &str, now: &str) -> Result<Simulation, SimError> {
        let compiled = civicflow_dsl::compile(source).map_err(|d| {
            SimError::Compile(
                d.as_slice().iter().map(|x| format!("{}: {}", x.code, x.message)).collect::<Vec<_>>().join("\n"),
            )
        })?;
        let program = Program::new(compiled.policy, compiled.hash).map_err(SimError::Compile)?;
        let calendar = Calendar::chinese().map_err(|e| SimError::Calendar(e.to_string()))?;
        let now = parse_local(program.offset, now).ok_or_else(|| SimError::Compile(format!("bad time `{now}`")))?;
        Ok(Simulation {
            program,
            calendar,
            state: State::new(),
            history: Vec::new(),
            now,
            id: "sim".into(),
            link: None,
        })
    }

    pub fn ctx(&self) -> Context<'_> {
        Context { program: &self.program, calendar: &self.calendar }
    }

    /// A local time in the policy's zone: `2012-03-21` or `2012-03-21 09:30`.
    pub fn at(&self, local: &str) -> DateTime<Utc> {
        parse_local(self.program.offset, local).unwrap_or(self.now)
    }

    fn run(&mut self, command: &Command) -> Result<Vec<Event>, Refusal> {
        let facts = core::cycles::Facts {
            instance: Some(self.id.clone()),
            link: self.link.clone(),
            ..core::cycles::Facts::default()
        };
        let (events, _) = core::decide_with_facts(self.ctx(), &self.state, command, self.now, &facts)?;
        for e in &events {
            core::apply(&mut self.state, e, self.now);
            self.history.push((e.clone(), self.now));
        }
        Ok(events)
    }

    pub fn start(&mut self, params: &[(&str, Value)]) -> Result<Vec<Event>, Refusal> {
        let params: BTreeMap<String, Value> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        self.run(&Command::Start { actor: actor("领导小组"), params })
    }

    /// Acts on a step as a principal of the given role, in the office bound to the role on that
    /// step if the policy binds it (R6.1); `act_as` chooses the office.
    pub fn act(&mut self, role: &str, node: &str, action: Action) -> Result<Vec<Event>, Refusal> {
        let mut a = actor(role);
        if let Some(office) = core::bound_office(&self.program, &self.state, node, role) {
            a.office = office;
        }
        self.run(&Command::Act { actor: a, node: node.to_string(), action, comment: None })
    }

    pub fn act_as(&mut self, actor: Actor, node: &str, action: Action) -> Result<Vec<Event>, Refusal> {
        self.run(&Command::Act { actor, node: node.to_string(), action, comment: None })
    }

    /// Any command, decided and applied at the simulation's clock (suspension, resumption …).
    pub fn command(&mut self, command: Command) -> Result<Vec<Event>, Refusal> {
        self.run(&command)
    }

    /// Issue 11.5: moves the instance to the policy compiled from `source` with `renames` (old
    /// id → new id), as a migration plan `plan` does: decided with the new version, which the
    /// simulation runs from then on when it is accepted.
    pub fn migrate_to(&mut self, source: &str, renames: &[(&str, &str)]) -> Result<Vec<Event>, Refusal> {
        let compiled = civicflow_dsl::compile(source).map_err(|d| Refusal::Evaluation {
            message: d.as_slice().iter().map(|x| format!("{}: {}", x.code, x.message)).collect::<Vec<_>>().join("\n"),
        })?;
        let to = Program::new(compiled.policy, compiled.hash).map_err(|message| Refusal::Evaluation { message })?;
        let renames: BTreeMap<String, String> = renames.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        let map = core::migration_map("sim-plan", &self.program, &to, &renames)
            .map_err(|why| Refusal::MigrationRefused { step: None, why })?;
        let command = Command::Migrate { actor: actor("领导小组"), map };
        let ctx = Context { program: &to, calendar: &self.calendar };
        let (events, _) = core::decide(ctx, &self.state, &command, self.now).map(|e| (e, ()))?;
        for e in &events {
            core::apply(&mut self.state, e, self.now);
            self.history.push((e.clone(), self.now));
        }
        self.program = to;
        Ok(events)
    }

    pub fn cancel(&mut self, reason: &str) -> Result<Vec<Event>, Refusal> {
        self.run(&Command::Cancel { actor: actor("领导小组"), reason: reason.into() })
    }

    /// R0.2: adds a year to the calendar and tells the instance (`Command::CalendarAdded`).
    pub fn add_calendar_year(
        &mut self,
        year: crate::calendar::YearCalendar,
        notice: core::CalendarNotice,
        added_by: &str,
    ) -> Result<Vec<Event>, Refusal> {
        let number = year.year();
        self.calendar.insert(year);
        self.run(&Command::CalendarAdded { year: number, notice, added_by: added_by.to_string() })
    }

    /// Moves the clock to `local`, firing every timer due on the way, in order, each once.
    pub fn advance_to(&mut self, local: &str) -> Result<Vec<Event>, Refusal> {
        let until = self.at(local);
        self.advance_until(until)
    }

    pub fn advance_until(&mut self, until: DateTime<Utc>) -> Result<Vec<Event>, Refusal> {
        let mut out = Vec::new();
        loop {
            // A closed instance still wants its next cycle's timer (R0.3); [`Self::next_cycle`]
            // then runs the new instance, as the durable runtime creates it in the same commit.
            let next = core::pending_timers(self.ctx(), &self.state)
                .into_iter()
                .filter(|t| t.at <= until)
                .min_by_key(|t| t.at);
            let Some(t) = next else { break };
            self.now = self.now.max(t.at);
            let events = self.run(&Command::Fire { node: t.node.clone(), kind: t.kind, at: t.at })?;
            if events.is_empty() {
                // A timer that changed nothing is spent; make sure it is not offered again.
                if core::pending_timers(self.ctx(), &self.state).contains(&t) {
                    break;
                }
            }
            out.extend(events);
        }
        self.now = self.now.max(until);
        Ok(out)
    }

    /// R0.3: the next cycle this instance opened (`Event::NextCycleOpened`), started at its due
    /// instant with the parameters the policy carries over and its due date, as the durable
    /// runtime starts it. `None` while no next cycle is open.
    pub fn next_cycle(&self) -> Result<Option<Simulation>, Refusal> {
        let Some(next) = self.state.cycle.next.as_ref().filter(|n| n.opened) else { return Ok(None) };
        let ctx = self.ctx();
        let Some(cycle) = core::cycles::due_cycle(ctx, &self.state) else {
            return Err(Refusal::Evaluation { message: "the next cycle is opened but no recurrence is due".into() });
        };
        let params = core::cycles::next_params(ctx, &self.state, &cycle, next.due_at, &BTreeMap::new())?;
        let mut sim = Simulation {
            program: self.program.clone(),
            calendar: self.calendar.clone(),
            state: State::new(),
            history: Vec::new(),
            now: next.due_at,
            id: next.instance.clone(),
            link: Some(core::cycles::CycleLink { number: next.cycle, previous: self.id.clone() }),
        };
        sim.run(&Command::Start { actor: actor("timer"), params })?;
        Ok(Some(sim))
    }

    pub fn status_of(&self, node: &str) -> Option<core::NodeStatus> {
        self.state.nodes.get(node).map(|n| n.status)
    }

    /// Kinds of the events so far, in order.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.history.iter().map(|(e, _)| e.kind()).collect()
    }

    /// Replays the history into a fresh state (it must equal `state`).
    pub fn replayed(&self) -> State {
        core::replay(self.history.iter().map(|(e, at)| (e, *at)))
    }
}

/// A principal named after its role, in an office of the same name.
pub fn actor(role: &str) -> Actor {
    Actor { principal: format!("{role}-1"), office: role.to_string(), role: role.to_string() }
}

fn parse_local(offset: FixedOffset, s: &str) -> Option<DateTime<Utc>> {
    let naive = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
        .ok()
        .or_else(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(|d| d.and_time(chrono::NaiveTime::MIN)))?;
    offset.from_local_datetime(&naive).single().map(|d| d.with_timezone(&Utc))
}

/// Shorthands for values in tests and rehearsals.
pub fn int(n: i64) -> Value {
    Value::int(n)
}

pub fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

pub fn date(s: &str) -> Value {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map(Value::Date).unwrap_or(Value::Text(s.to_string()))
}

/// A form from pairs.
pub fn form(fields: &[(&str, Value)]) -> Action {
    Action::SubmitForm { data: fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect() }
}
