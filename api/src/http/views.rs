//! What the API shows of an instance: its steps with status, window, due date (or the year it
//! waits for, R0.2), who acted and what is awaited, its votes and its cycle (R0.3); built from
//! the core's state and the compiled policy, before R6.2's redaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use civicflow_dsl::ir::{self, NodeKind};
use civicflow_dsl::value::{to_json, Value};
use civicflow_engine::core::{NodeState, NodeStatus, Program, State as CoreState, Tally, VoteCounts};
use civicflow_engine::store::InstanceRecord;

/// An instance's state: its steps with status, dates, who acted, what is awaited.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct InstanceView {
    pub id: String,
    pub policy: String,
    pub policy_hash: String,
    /// `running`, `completed`, `rejected` or `cancelled`.
    pub status: String,
    /// The number of events folded into this state.
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    /// The instant this state is as of, for `?as_of=`.
    pub as_of: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Derived values (sizes, types) computed from the parameters at the start.
    #[schema(value_type = Object)]
    pub values: serde_json::Map<String, serde_json::Value>,
    /// Phases, calls and steps in the policy's order.
    pub steps: Vec<StepView>,
    /// R0.3: which cycle of a recurring procedure this instance is (1 for the first).
    pub cycle: u32,
    /// The instance of the cycle before, for a later cycle.
    pub previous: Option<String>,
    /// When the next cycle is (or was) due; `None` for a procedure that does not recur, or
    /// while the anchor of its period has not happened.
    pub next_cycle_due: Option<DateTime<Utc>>,
    /// The next cycle's instance id, once it is due.
    pub next_cycle: Option<String>,
    /// The role whose task it is to start the next cycle (it needs fresh parameters), until it
    /// is started.
    pub next_cycle_awaiting: Option<String>,
    /// The next cycle fell due but could not open by itself: the refusal's code and words
    /// (event `next_cycle_refused`); recorded once, not retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cycle_refused: Option<String>,
    /// Issue 11.3: suspended (挂起) since when and why; no step may be acted on and no deadline
    /// runs until it resumes. Absent while the instance runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<SuspensionView>,
}

/// An instance suspended (挂起): since when and why.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SuspensionView {
    pub since: DateTime<Utc>,
    pub reason: String,
}

/// One phase, call or step of an instance.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StepView {
    /// The runtime id (`phase/step`, `step[2]` for a fan-out copy): what the action URL names.
    pub id: String,
    pub name: String,
    pub title: Option<String>,
    /// `phase`, `call`, or the step kind (`task`, `approval`, `filing`, `consultation`,
    /// `publicity`, `vote`, `meeting`).
    pub kind: String,
    /// `waiting`, `open`, `done` or `skipped`.
    pub status: String,
    /// `done`, `approved`, `rejected` or `filed`.
    pub outcome: Option<String>,
    /// The roles entitled to act.
    pub roles: Vec<String>,
    /// The roles that have not acted yet on an open step.
    pub awaiting: Vec<String>,
    pub opened_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub window_opens: Option<DateTime<Utc>>,
    /// Acting is allowed before this instant.
    pub window_closes: Option<DateTime<Utc>>,
    /// R0.2: the window counts working days into this year, whose calendar is not published
    /// yet; `window_opens` / `window_closes` are null and acting is refused (F027) until the
    /// year is added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_awaiting_calendar: Option<i32>,
    pub due_at: Option<DateTime<Utc>>,
    /// R0.2: the deadline counts working days into this year, whose calendar is not published
    /// yet; `due_at` is null until the year is added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_awaiting_calendar: Option<i32>,
    /// The deadline in words when it has no instant: `awaiting the 2027 calendar`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_note: Option<String>,
    pub min_until: Option<DateTime<Utc>>,
    /// R0.2: the same for a minimum duration in working days (the step cannot end before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_awaiting_calendar: Option<i32>,
    pub overdue: bool,
    pub escalated_to: Vec<String>,
    /// `on breach reassign R` (提级办理): the role that took the late step over and alone acts on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassigned_to: Option<String>,
    /// How many times a return reopened it.
    pub round: u32,
    pub acts: Vec<ActView>,
    #[schema(value_type = Option<Object>)]
    pub form: Option<serde_json::Value>,
    pub vote: Option<VoteView>,
    /// Issue 11.2: the offices the step was copied to for information (抄送), and whether each
    /// has read it (已阅).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<CopyView>,
}

/// A copy of a step sent to an office for information (抄送).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CopyView {
    pub office: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Who of the office marked it read (已阅), and when; null while unread.
    pub read_by: Option<String>,
    pub read_at: Option<DateTime<Utc>>,
}

/// An act recorded on a step.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ActView {
    pub principal: String,
    pub office: String,
    pub role: String,
    pub action: String,
    pub at: DateTime<Utc>,
    pub text: Option<String>,
}

/// A vote as decided.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct VoteView {
    pub eligible: u64,
    pub seats: Option<u64>,
    pub counts: VoteCountsView,
    pub elected: Vec<String>,
}

/// The counts of a vote; `cast` includes the invalid ballots (R2.16).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteCountsView {
    pub present: u64,
    pub cast: u64,
    #[serde(default)]
    pub invalid: u64,
    pub tallies: Vec<TallyView>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TallyView {
    pub candidate: String,
    pub votes: u64,
}

/// A serde word (`open`, `approved`, `task` …) of a core or IR enum.
pub fn word<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

pub fn kind_word(kind: &NodeKind) -> String {
    match kind {
        NodeKind::Phase => "phase".into(),
        NodeKind::Call => "call".into(),
        NodeKind::Step(k) => word(k),
    }
}

pub(super) fn json_map(values: &BTreeMap<String, Value>) -> serde_json::Map<String, serde_json::Value> {
    values.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()
}

/// The view of a state, steps in the policy's order.
pub fn view(
    record: &InstanceRecord,
    program: &Program,
    core: &CoreState,
    as_of: Option<DateTime<Utc>>,
) -> InstanceView {
    let mut by_def: BTreeMap<&str, Vec<(&String, &NodeState)>> = BTreeMap::new();
    for (key, n) in &core.nodes {
        by_def.entry(n.def.as_str()).or_default().push((key, n));
    }
    let mut steps = Vec::new();
    for def in &program.policy.nodes {
        for (key, n) in by_def.get(def.id.as_str()).map(Vec::as_slice).unwrap_or_default() {
            steps.push(step_view(key, def, n));
        }
    }
    InstanceView {
        id: record.id.clone(),
        policy: record.policy_name.clone(),
        policy_hash: record.policy_hash.clone(),
        status: word(&core.status),
        version: core.version,
        created_at: record.created_at,
        started_at: core.started_at,
        as_of,
        params: json_map(&core.params),
        values: json_map(&core.values),
        steps,
        cycle: core.cycle.number(),
        previous: core.cycle.previous.clone(),
        next_cycle_due: core
            .cycle
            .next
            .as_ref()
            .map(|n| n.due_at)
            .or_else(|| civicflow_engine::core::cycles::next_due_in(program, core).map(|(_, at)| at)),
        next_cycle: core.cycle.next.as_ref().map(|n| n.instance.clone()),
        next_cycle_awaiting: core.cycle.next.as_ref().filter(|n| !n.opened).and_then(|n| n.awaiting.clone()),
        next_cycle_refused: core.cycle.next.as_ref().and_then(|n| n.refused.clone()),
        suspended: core.suspended.as_ref().map(|s| SuspensionView { since: s.since, reason: s.reason.clone() }),
    }
}

fn step_view(key: &str, def: &ir::Node, n: &NodeState) -> StepView {
    // The approvers as they are now (加签/减签, issue 11.2).
    let roles = civicflow_engine::core::acting_roles(def, n).into_owned();
    let awaiting = if n.status == NodeStatus::Open && matches!(def.kind, NodeKind::Step(_)) {
        roles.iter().filter(|r| !n.acts.iter().any(|a| &a.actor.role == *r)).cloned().collect()
    } else {
        Vec::new()
    };
    StepView {
        id: key.to_string(),
        name: def.name.clone(),
        title: def.title.clone(),
        kind: kind_word(&def.kind),
        status: word(&n.status),
        outcome: n.outcome.as_ref().map(word),
        roles,
        awaiting,
        opened_at: n.opened_at,
        closed_at: n.closed_at,
        window_opens: n.window.map(|w| w.0),
        window_closes: n.window.map(|w| w.1),
        window_awaiting_calendar: n.window_awaiting.map(|w| w.year),
        due_at: n.due_at,
        due_awaiting_calendar: awaiting_year(n),
        due_note: awaiting_year(n).map(awaiting_words),
        min_until: n.min_until,
        min_awaiting_calendar: n.min_awaiting.map(|w| w.year),
        overdue: n.overdue,
        escalated_to: n.escalated_to.clone(),
        reassigned_to: n.reassigned_to.clone(),
        round: n.round,
        acts: n
            .acts
            .iter()
            .map(|a| ActView {
                principal: a.actor.principal.clone(),
                office: a.actor.office.clone(),
                role: a.actor.role.clone(),
                action: a.action.clone(),
                at: a.at,
                text: a.text.clone(),
            })
            .collect(),
        form: n.form.as_ref().map(|f| serde_json::Value::Object(json_map(f))),
        vote: n.vote.as_ref().map(|v| VoteView {
            eligible: v.eligible,
            seats: v.seats,
            counts: VoteCountsView {
                present: v.counts.present,
                cast: v.counts.cast,
                invalid: v.counts.invalid,
                tallies: v
                    .counts
                    .tallies
                    .iter()
                    .map(|t| TallyView { candidate: t.candidate.clone(), votes: t.votes })
                    .collect(),
            },
            elected: v.elected.clone(),
        }),
        copies: n
            .copies
            .iter()
            .map(|(office, c)| CopyView {
                office: office.clone(),
                at: c.at,
                message: c.message.clone(),
                read_by: c.read.as_ref().map(|r| r.0.clone()),
                read_at: c.read.as_ref().map(|r| r.1),
            })
            .collect(),
    }
}

impl From<VoteCountsView> for VoteCounts {
    fn from(v: VoteCountsView) -> Self {
        VoteCounts {
            present: v.present,
            cast: v.cast,
            invalid: v.invalid,
            tallies: v.tallies.into_iter().map(|t| Tally { candidate: t.candidate, votes: t.votes }).collect(),
        }
    }
}

/// R0.2: the year a step's deadline waits for, if it does.
pub fn awaiting_year(n: &civicflow_engine::core::NodeState) -> Option<i32> {
    match n.due() {
        civicflow_engine::core::Due::AwaitingCalendar { year } => Some(year),
        _ => None,
    }
}

/// `awaiting the 2027 calendar` (the pages say 待2027年日历公布).
pub fn awaiting_words(year: i32) -> String {
    format!("awaiting the {year} calendar")
}
