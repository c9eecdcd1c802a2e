//! Scenario tests: every bundled policy driven through its whole procedure on the simulated
//! clock (`civicflow_engine::sim`), each test named after the DOMAIN.md rule it checks.
//!
//! Instants are written as local times in the policies' zone (Asia/Shanghai, +08:00): a window
//! `A .. B` of a policy is recorded as `[A 00:00, B+1 00:00)`, a deadline "by day D" falls at
//! `D+1 00:00`.

mod committee_standardisation;
mod community_access;
mod community_assessment;
mod election;
mod election_congress;
mod election_corrections;
mod offices;
mod property_service;
mod reform_pilot;
mod residents_demand;
mod residents_demand_changes;

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use civicflow_dsl::value::Value;
use civicflow_engine::core::{Action, Event, Tally, VoteCounts};
use civicflow_engine::sim::Simulation;

/// A simulation of the bundled policy `name`, its clock at `now` (local time).
pub fn sim(name: &str, now: &str) -> Simulation {
    let b = civicflow_policies::get(name).unwrap();
    Simulation::new(b.source, now).unwrap()
}

fn zone() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap()
}

/// A local time (`2008-02-02 00:00`, +08:00) as an instant.
pub fn at(local: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").unwrap();
    zone().from_local_datetime(&naive).unwrap().with_timezone(&Utc)
}

/// An instant as a local time `YYYY-MM-DD HH:MM`.
pub fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&zone()).format("%Y-%m-%d %H:%M").to_string()
}

/// The recorded window of a node, as local times (the end excluded).
pub fn window(s: &Simulation, node: &str) -> Option<(String, String)> {
    s.state.nodes[node].window.map(|(a, b)| (local(a), local(b)))
}

/// The deadline of a node, as a local time.
pub fn due(s: &Simulation, node: &str) -> Option<String> {
    s.state.nodes[node].due_at.map(local)
}

/// The events about `node` (or anything under it), as (kind, local instant), in order.
pub fn events_of(s: &Simulation, node: &str) -> Vec<(&'static str, String)> {
    let under = format!("{node}/");
    s.history
        .iter()
        .filter(|(e, _)| e.node().is_some_and(|n| n == node || n.starts_with(&under)))
        .map(|(e, t)| (e.kind(), local(*t)))
        .collect()
}

/// The events recorded after the first `skip`, as (kind, node, local instant).
pub fn tail(s: &Simulation, skip: usize) -> Vec<(&'static str, String, String)> {
    s.history.iter().skip(skip).map(|(e, t)| (e.kind(), e.node().unwrap_or("").to_string(), local(*t))).collect()
}

/// The events with a timer's cause (deadline, reminder, window) from the history.
pub fn timer_events(s: &Simulation) -> Vec<(Event, String)> {
    s.history
        .iter()
        .filter(|(e, _)| {
            matches!(
                e,
                Event::Reminded { .. }
                    | Event::Overdue { .. }
                    | Event::Escalated { .. }
                    | Event::Notified { .. }
                    | Event::WindowClosed { .. }
            )
        })
        .map(|(e, t)| (e.clone(), local(*t)))
        .collect()
}

pub fn done(report: &str) -> Action {
    Action::Complete { report: report.into() }
}

pub fn approve() -> Action {
    Action::Approve { comment: None }
}

pub fn reject(reason: &str) -> Action {
    Action::Reject { reason: reason.into() }
}

pub fn file() -> Action {
    Action::File { comment: None }
}

pub fn opinion(o: &str) -> Action {
    Action::GiveOpinion { opinion: o.into() }
}

pub fn record(fields: &[(&str, Value)]) -> Value {
    Value::Record(fields.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect::<BTreeMap<_, _>>())
}

pub fn names(items: &[&str]) -> Value {
    Value::List(items.iter().map(|s| Value::Text((*s).to_string())).collect())
}

/// The counts of a vote: `cast` includes the `invalid` ballots (R2.16).
pub fn ballots(present: u64, cast: u64, invalid: u64, tallies: &[(&str, u64)]) -> Action {
    Action::EnterVote {
        counts: VoteCounts {
            present,
            cast,
            invalid,
            tallies: tallies.iter().map(|(c, v)| Tally { candidate: (*c).to_string(), votes: *v }).collect(),
        },
    }
}
