//! Correcting a start parameter of a running instance (更正, issue 11.4): by a role the policy
//! declares `may correct`, with a reason. The corrected parameters are checked as at the start
//! (type, range, the amounts computed from them); what was computed from them is computed again —
//! the values (`let`: sizes, bands), the windows, deadlines and minimum durations of the open
//! steps — and steps not open yet simply open with the new values. What the completed steps
//! decided must still hold under the new values: a form rule (`require`), an approval condition,
//! a vote's rules and result, a `when`, a fan-out's list; a correction that would break one is
//! refused, naming the step and the rule. Nothing recorded is edited: one `corrected` event says
//! what changed, from what, why, and what it moved.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use civicflow_dsl::eval;
use civicflow_dsl::ir::{self, NodeKind};
use civicflow_dsl::value::Value;

use super::open::Window;
use super::period::{self, PeriodEnd};
use super::{amounts, eval_refusal, rules, Actor, Decision, Event, NodeStatus, Outcome, Refusal};
use super::{ParamChange, RecomputedStep};

impl Decision<'_> {
    pub(super) fn correct(
        &mut self,
        actor: &Actor,
        given: &BTreeMap<String, Value>,
        reason: &str,
    ) -> Result<(), Refusal> {
        self.running()?;
        let policy = &self.ctx.program.policy;
        let allowed: Vec<String> = policy.roles.iter().filter(|r| r.may_correct).map(|r| r.name.clone()).collect();
        if !allowed.contains(&actor.role) {
            return Err(Refusal::CorrectNotAllowed { role: actor.role.clone(), allowed });
        }
        if reason.trim().is_empty() {
            return Err(Refusal::ReasonRequired { action: "correct".into() });
        }
        if given.is_empty() {
            return Err(Refusal::BadParam {
                param: String::new(),
                problem: "name at least one parameter to correct".into(),
            });
        }
        let mut params = self.state.params.clone();
        let mut changes = Vec::new();
        for (name, to) in given {
            // A called procedure's parameters (`call/param`) are its caller's `with`, not a start's.
            let Some(p) = policy.params.iter().find(|p| p.id == *name && !p.id.contains('/')) else {
                let known: Vec<&str> = policy.params.iter().map(|p| p.id.as_str()).collect();
                return Err(Refusal::BadParam {
                    param: name.clone(),
                    problem: format!("this policy has no such parameter (it has {})", known.join(", ")),
                });
            };
            rules::check_type(&p.ty, to).map_err(|problem| Refusal::BadParam { param: name.clone(), problem })?;
            let from = params.insert(name.clone(), to.clone());
            if from.as_ref() == Some(to) {
                return Err(Refusal::BadParam { param: name.clone(), problem: format!("is {to} already") });
            }
            changes.push(ParamChange { param: name.clone(), from, to: to.clone() });
        }
        amounts::check_ranges(policy, &params)?;
        let values = eval::derived_values(policy, &params).map_err(eval_refusal)?;
        amounts::check_amounts(policy, &params, &values)?;
        // Decided against a copy holding the new values; the event then applies them.
        let old = (self.state.params.clone(), self.state.values.clone(), self.state.nodes.clone());
        let old_ends = self.open_ends();
        self.state.nodes = old.2.clone();
        self.state.params = params;
        self.state.values = values.clone();
        let checked = self.completed_still_hold().and_then(|()| self.open_ends());
        (self.state.params, self.state.values, self.state.nodes) = old;
        let (old_ends, new_ends) = (old_ends?, checked?);
        let steps = self.periods_moved(&old_ends, &new_ends)?;
        self.emit(Event::Corrected { params: changes, values, reason: reason.to_string(), steps });
        Ok(())
    }

    /// What each completed step decided still holds with the state's values, or the refusal that
    /// names the first step and rule it would break.
    fn completed_still_hold(&self) -> Result<(), Refusal> {
        let broken = |node: &str, rule: String| Refusal::CorrectionRefused { node: node.into(), rule };
        for (key, n) in self.state.nodes.iter() {
            let Some(def) = self.ctx.program.node(&n.def) else { continue };
            // A fan-out made its copies from the list as it was.
            if let (Some(fe), None) = (&def.for_each, &n.element) {
                let made: Vec<&Value> = self
                    .state
                    .nodes
                    .iter()
                    .filter(|(k, c)| c.def == n.def && c.element.is_some() && *k != key)
                    .filter_map(|(_, c)| c.element.as_ref())
                    .collect();
                if !made.is_empty() {
                    let list = eval::eval(&fe.list, &self.env(key, None, None)).map_err(eval_refusal)?;
                    let now: Vec<&Value> = match &list {
                        Value::List(items) => items.iter().collect(),
                        _ => Vec::new(),
                    };
                    if now != made {
                        return Err(broken(key, format!("its copies were made for each of `{}` as it was", fe.var)));
                    }
                }
            }
            if n.status != NodeStatus::Done {
                continue;
            }
            if let Some(guard) = &def.guard {
                if eval::eval(guard, &self.env(key, None, None)).map_err(eval_refusal)? == Value::Bool(false) {
                    return Err(broken(key, "its `when` condition would be false".into()));
                }
            }
            if let Some(form) = &n.form {
                for r in &def.requires {
                    let ok = eval::eval(&r.condition, &self.env(key, Some(form), None)).map_err(eval_refusal)?;
                    if ok != Value::Bool(true) {
                        return Err(broken(key, r.message.clone()));
                    }
                }
            }
            if n.outcome == Some(Outcome::Approved) {
                for r in &def.approve_requires {
                    let ok = eval::eval(&r.condition, &self.env(key, None, None)).map_err(eval_refusal)?;
                    if ok != Value::Bool(true) {
                        return Err(broken(key, r.message.clone()));
                    }
                }
            }
            if let (Some(recorded), NodeKind::Step(ir::StepKind::Vote)) = (&n.vote, def.kind) {
                let again = self.vote(key, def, &recorded.counts).map_err(|r| broken(key, r.to_string()))?;
                if again.elected != recorded.elected || again.seats != recorded.seats {
                    return Err(broken(
                        key,
                        format!(
                            "its result would change (elected {} for {} seats, not {} for {})",
                            again.elected.join("、"),
                            again.seats.map_or("no".to_string(), |s| s.to_string()),
                            recorded.elected.join("、"),
                            recorded.seats.map_or("no".to_string(), |s| s.to_string()),
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Each open step's (or phase's) window, deadline and minimum duration as the state's values
    /// compute them from its opening (the periods awaiting a calendar are computed when it comes).
    /// The windows are computed first and written into the state, for the clocks that start
    /// with a phase's window: the caller restores the nodes.
    fn open_ends(&mut self) -> Result<BTreeMap<String, Ends>, Refusal> {
        let mut windows = BTreeMap::new();
        for (key, n) in self.state.nodes.iter() {
            let Some(def) = self.ctx.program.node(&n.def) else { continue };
            if n.status == NodeStatus::Open {
                if let Some(Window::At(from, to)) = self.window_of(key, def)? {
                    windows.insert(key.to_string(), (from, to));
                }
            }
        }
        for (key, w) in &windows {
            if let Some(n) = self.state.nodes.get_mut(key) {
                n.window = Some(*w);
            }
        }
        let mut out = BTreeMap::new();
        for (key, n) in self.state.nodes.iter() {
            let Some(def) = self.ctx.program.node(&n.def) else { continue };
            let (NodeStatus::Open, Some(opened)) = (n.status, n.opened_at) else { continue };
            let window = windows.get(key).copied();
            let start = self.clock_start(key, n.window, opened);
            let due = match (&def.deadline, n.kept_limit) {
                (Some(d), None) => instant(self.deadline_from(key, d, start)?),
                _ => None,
            };
            let min = instant(self.min_from(def, start)?);
            out.insert(key.to_string(), Ends { window, due, min });
        }
        Ok(out)
    }

    /// The open steps whose periods the correction moves, with their new ends. A deadline
    /// extended (延期) keeps its extension, counted on from the new deadline.
    fn periods_moved(
        &self,
        old: &BTreeMap<String, Ends>,
        new: &BTreeMap<String, Ends>,
    ) -> Result<Vec<RecomputedStep>, Refusal> {
        let mut steps = Vec::new();
        for (key, after) in new {
            let Some(before) = old.get(key) else { continue };
            let Some(n) = self.state.nodes.get(key) else { continue };
            let window = after.window.filter(|w| before.window != Some(*w));
            let mut due_at = after.due.filter(|d| before.due != Some(*d));
            if let (Some(due), Some(rule)) = (due_at, self.ctx.program.node(&n.def).and_then(|d| d.extend.as_ref())) {
                if n.extended > 0 {
                    due_at = Some(self.extended_by(key, due, ir::Span { amount: n.extended, unit: rule.max.unit })?);
                }
            }
            let min_until = after.min.filter(|m| before.min != Some(*m));
            if window.is_some() || due_at.is_some() || min_until.is_some() {
                steps.push(RecomputedStep { node: key.clone(), window, due_at, min_until });
            }
        }
        Ok(steps)
    }

    fn extended_by(&self, key: &str, due: DateTime<Utc>, span: ir::Span) -> Result<DateTime<Utc>, Refusal> {
        let offset = self.ctx.program.offset;
        let last_day = (due - TimeDelta::seconds(1)).with_timezone(&offset).date_naive();
        match period::period_end_from_day(self.ctx.calendar, offset, last_day, span, false)? {
            PeriodEnd::At(to) => Ok(to),
            PeriodEnd::AwaitingCalendar { year } => Err(Refusal::Calendar {
                message: format!(
                    "the corrected deadline of step `{key}` with its extension of {span} counts into {year}, whose \
                     working-day calendar is not published yet; correct it once the year is added"
                ),
            }),
        }
    }
}

/// An open step's periods as computed from its opening.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Ends {
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    due: Option<DateTime<Utc>>,
    min: Option<DateTime<Utc>>,
}

fn instant(end: Option<PeriodEnd>) -> Option<DateTime<Utc>> {
    match end {
        Some(PeriodEnd::At(at)) => Some(at),
        _ => None,
    }
}
