//! The types of the pure core: commands in, events out, state folded from events.
//!
//! Events are a storage boundary: they are serialized into the audit chain, so a variant or a
//! field is never renamed or removed; new ones are added.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use civicflow_dsl::value::Value;
use serde::{Deserialize, Serialize};

/// Who acts: a principal of an office, acting in one role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The principal's stable name (never its token).
    pub principal: String,
    /// The office (科室, 党工委 …) the principal belongs to.
    pub office: String,
    /// The role the principal acts in; it must be one the step names in `by`.
    pub role: String,
}

/// What an office does to a step (the HTTP API calls these actions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Record the step's form; completes a task or meeting whose rules it meets.
    SubmitForm { data: BTreeMap<String, Value> },
    /// Complete a task with a report (办结).
    Complete { report: String },
    /// 同意 / 批准.
    Approve { comment: Option<String> },
    /// 不同意 / 驳回: needs a reason.
    Reject { reason: String },
    /// 备案: a sign-off that cannot veto.
    File { comment: Option<String> },
    /// 征求意见: a non-binding opinion.
    GiveOpinion { opinion: String },
    /// The counts of a vote (投票结果).
    EnterVote { counts: VoteCounts },
    /// An objection during a public notice (公示期异议).
    RaiseObjection { objection: String },
    /// 退回: send the instance back to an earlier step.
    ReturnTo { target: String, reason: String },
    /// Take back one's own act on the step before anyone else acts on it.
    Withdraw,
    /// Hand one's role on this step to another principal.
    Delegate { to: String },
    /// 催办: remind the entitled offices that the step waits for them.
    Urge { message: Option<String> },
    /// 延期: move the step's deadline later by `amount` of the unit its `extend … max` is
    /// written in, with a reason (issue 11.1).
    Extend { amount: u32, reason: String },
    /// Issue 11.1: approve the extension asked for on the step (`extend … approved by`).
    ApproveExtension { comment: Option<String> },
    /// Issue 11.1: refuse the extension asked for, with a reason; the deadline stays.
    RejectExtension { reason: String },
    /// 转办: hand the step to another office holding its bound role, with a reason (issue 11.2).
    Transfer { to: String, reason: String },
    /// 加签: add an approver (a role of the step's `approvers … from` pool) while it is open.
    AddApprover { role: String, reason: String },
    /// 减签: remove an approver who has not acted, while the step is open.
    RemoveApprover { role: String, reason: String },
    /// 抄送: copy the step, open or done, to an office for information (issue 11.2); it is listed
    /// in that office's inbox, read-only, until it marks it read.
    CopyTo { to: String, message: Option<String> },
    /// 已阅: the actor's office has read the copy it was sent of the step.
    MarkRead,
}

impl Action {
    /// An action that comes from a role of the policy outside the step's `by`: an objection to a
    /// public notice, and those the step's own clauses narrow (`may return`, `urge by`, `extend
    /// by`, `transfer by`, `approvers by`; `returns::allowed`).
    pub fn from_outside_by(&self) -> bool {
        matches!(
            self,
            Action::RaiseObjection { .. }
                | Action::Urge { .. }
                | Action::ReturnTo { .. }
                | Action::Extend { .. }
                | Action::ApproveExtension { .. }
                | Action::RejectExtension { .. }
                | Action::Transfer { .. }
                | Action::AddApprover { .. }
                | Action::RemoveApprover { .. }
                | Action::CopyTo { .. }
                | Action::MarkRead
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            Action::SubmitForm { .. } => "submit_form",
            Action::Complete { .. } => "complete",
            Action::Approve { .. } => "approve",
            Action::Reject { .. } => "reject",
            Action::File { .. } => "file",
            Action::GiveOpinion { .. } => "give_opinion",
            Action::EnterVote { .. } => "enter_vote",
            Action::RaiseObjection { .. } => "raise_objection",
            Action::ReturnTo { .. } => "return_to",
            Action::Withdraw => "withdraw",
            Action::Delegate { .. } => "delegate",
            Action::Urge { .. } => "urge",
            Action::Extend { .. } => "extend",
            Action::ApproveExtension { .. } => "approve_extension",
            Action::RejectExtension { .. } => "reject_extension",
            Action::Transfer { .. } => "transfer",
            Action::AddApprover { .. } => "add_approver",
            Action::RemoveApprover { .. } => "remove_approver",
            Action::CopyTo { .. } => "copy_to",
            Action::MarkRead => "mark_read",
        }
    }
}

/// Counts entered for a vote. `cast` includes invalid ballots (R2.16).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteCounts {
    pub present: u64,
    pub cast: u64,
    pub invalid: u64,
    /// Votes per candidate, in slate order.
    pub tallies: Vec<Tally>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub candidate: String,
    pub votes: u64,
}

/// A command to the core.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "command")]
pub enum Command {
    Start {
        actor: Actor,
        params: BTreeMap<String, Value>,
    },
    Act {
        actor: Actor,
        node: String,
        action: Action,
        comment: Option<String>,
    },
    /// A timer is due: the timer service delivers it.
    Fire {
        node: String,
        kind: TimerKind,
        at: DateTime<Utc>,
    },
    Cancel {
        actor: Actor,
        reason: String,
    },
    /// 挂起 (issue 11.3): no step may be acted on and no deadline runs until resumed.
    Suspend {
        actor: Actor,
        reason: String,
    },
    /// 激活 (issue 11.3): every open deadline moves later by the time suspended.
    Resume {
        actor: Actor,
        reason: String,
    },
    /// 更正 (issue 11.4): correct start parameters, with a reason; what was computed from them is
    /// computed again.
    Correct {
        actor: Actor,
        params: BTreeMap<String, Value>,
        reason: String,
    },
    /// Issue 11.5: move the instance to the version `map.to` of its policy, as the plan `map.plan`
    /// maps it (decided with that version).
    Migrate {
        actor: Actor,
        map: super::migrate::MigrationMap,
    },
    /// R0.2: a year's working-day calendar was added; periods waiting for it are computed.
    CalendarAdded {
        year: i32,
        /// The notice (通知) the year transcribes, and its date.
        notice: CalendarNotice,
        /// Who added the year (a principal's name).
        added_by: String,
    },
}

/// The notice a year's working-day calendar transcribes, as recorded in each instance it affects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarNotice {
    /// E.g. 国务院办公厅关于2027年部分节假日安排的通知.
    pub title: String,
    /// The day the notice was issued.
    pub date: chrono::NaiveDate,
}

/// When a step is due, as people read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Due {
    /// No deadline (yet: `due N days after X` before X is done).
    None,
    /// The deadline's instant: 24:00 of its last day.
    At(DateTime<Utc>),
    /// R0.2: the deadline counts working days into a year whose calendar is not loaded yet
    /// (待{year}年日历公布); it is computed the moment the year is added.
    AwaitingCalendar { year: i32 },
}

/// A period whose end waits for a year's working-day calendar (R0.2): the year, and the instant
/// of the event the period counts from, to compute it when the year arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwaitingCalendar {
    pub year: i32,
    pub from: DateTime<Utc>,
    /// Issue 11.3: what suspensions add to the period, in its unit (the working or calendar days
    /// an instance was suspended while the period waited), counted on when the year comes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub extra: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// The deadline (办理时限) has passed: breach actions run.
    Due,
    /// A reminder before the deadline.
    Reminder,
    /// The minimum duration (e.g. 公示 3 days) has passed.
    MinDurationEnds,
    /// The window has closed: acting is refused from now on.
    WindowCloses,
    /// R0.3: the next cycle of a recurring procedure is due (node [`super::cycles::CYCLE_NODE`]).
    NextCycle,
}

/// A timer the instance wants set (derived from state by [`super::pending_timers`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timer {
    pub node: String,
    pub kind: TimerKind,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    /// Every step is done.
    Completed,
    /// A rejection ended the procedure (`on rejected end`).
    Rejected,
    Cancelled,
}

impl Status {
    /// The word stored and served for the status (`running`, `completed`, …).
    pub fn word(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Rejected => "rejected",
            Status::Cancelled => "cancelled",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Waiting for its dependencies or its parent.
    Waiting,
    /// Offices may act on it (within its window).
    Open,
    Done,
    /// Its `when` condition was false, or it waited for an outcome that did not happen.
    Skipped,
}

/// How a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Done,
    Approved,
    Rejected,
    Filed,
}

/// One act recorded on a step in its current round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Act {
    pub actor: Actor,
    pub action: String,
    pub at: DateTime<Utc>,
    pub text: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    /// The IR node this copy runs.
    pub def: String,
    /// The fan-out element, for a copy made by `for`.
    pub element: Option<Value>,
    pub status: NodeStatus,
    pub outcome: Option<Outcome>,
    pub opened_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Acting is allowed from `window.0` (included) to `window.1` (excluded).
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub due_at: Option<DateTime<Utc>>,
    /// The step may not complete before this instant.
    pub min_until: Option<DateTime<Utc>>,
    /// R0.2: the deadline waits for this year's calendar. Never set together with `due_at`
    /// (`apply` clears one when it sets the other); read both through [`NodeState::due`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_awaiting: Option<AwaitingCalendar>,
    /// R0.2: the minimum duration waits for this year's calendar (never with `min_until`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_awaiting: Option<AwaitingCalendar>,
    /// R0.2: the step's window is written in working days into this year, whose calendar is
    /// not published: nobody knows yet whether it is open, so acting waits (never with `window`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_awaiting: Option<AwaitingCalendar>,
    /// How many times the step was reopened by a return.
    pub round: u32,
    pub acts: Vec<Act>,
    pub form: Option<BTreeMap<String, Value>>,
    pub vote: Option<VoteResult>,
    pub overdue: bool,
    /// The step's window has closed (acting is refused from then on).
    #[serde(default)]
    pub window_closed: bool,
    /// Reminders sent for the current deadline.
    pub reminders_sent: u32,
    pub escalated_to: Vec<String>,
    /// Delegate principal → the actor who handed over their role on this step.
    pub delegations: BTreeMap<String, Actor>,
    /// The owner's limit of an `owned` step that was passed on (推诿): it keeps running through
    /// the return and is the step's deadline when it reopens (R3.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_limit: Option<DateTime<Utc>>,
    /// `on breach reassign R` (提级办理): R took the step over and alone acts on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reassigned_to: Option<String>,
    /// R6.1: role → office bound for this fan-out copy only (`bound by item`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bound: BTreeMap<String, String>,
    /// Issue 11.1: how much the deadline was extended in all, in the unit of the step's
    /// `extend … max`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub extended: u32,
    /// Issue 11.1: an extension asked for that waits for its approval (`extend … approved by`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_asked: Option<ExtensionAsked>,
    /// Issue 11.2: approvers added (加签) to and removed (减签) from the step's `by`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_roles: Vec<String>,
    /// Issue 11.2: the offices the step was copied to (抄送), by office. Kept through a return:
    /// what an office was sent stays sent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub copies: BTreeMap<String, CarbonCopy>,
}

/// An extension asked for (延期申请) that waits for a higher role's approval: how much, why, when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionAsked {
    pub amount: u32,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// A copy of a step sent to an office for information (抄送): when, and whether it was read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarbonCopy {
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The principal of the office who marked it read (已阅), and when; a copy sent again after
    /// it was read is unread again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<(String, DateTime<Utc>)>,
}

impl CarbonCopy {
    pub fn unread(&self) -> bool {
        self.read.is_none()
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A vote as decided: the counts and who was elected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VoteResult {
    pub eligible: u64,
    pub seats: Option<u64>,
    pub counts: VoteCounts,
    pub elected: Vec<String>,
}

/// An instance's state: a fold of its events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub params: BTreeMap<String, Value>,
    pub values: BTreeMap<String, Value>,
    /// Runtime nodes by key: the IR id, or `id[i]` for the i-th fan-out copy.
    pub nodes: super::Nodes,
    pub started_at: Option<DateTime<Utc>>,
    /// Number of events applied.
    pub version: u64,
    /// R0.3: which cycle of a recurring procedure this is (1 for the first) and what links it
    /// to the cycles before and after.
    #[serde(default, skip_serializing_if = "super::cycles::CycleState::is_first_and_open")]
    pub cycle: super::cycles::CycleState,
    /// R6.1: role → the office that holds it for this instance (from `Event::Bound`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bindings: BTreeMap<String, String>,
    /// Issue 11.3: suspended (挂起) since when and why, until resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<Suspension>,
}

/// An instance suspended (挂起): since when and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    pub since: DateTime<Utc>,
    pub reason: String,
}

/// A deadline waiting for a year's calendar that a resumption lengthened: by `amount` of its unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingShift {
    pub node: String,
    pub amount: u32,
}

/// A deadline a resumption moved (激活): the step, its deadline before and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedDeadline {
    pub node: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// A start parameter corrected (issue 11.4): its value before (none if it had none) and after.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamChange {
    pub param: String,
    pub from: Option<Value>,
    pub to: Value,
}

/// An open step whose periods a correction moved: each field set is the period's new end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecomputedStep {
    pub node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_until: Option<DateTime<Utc>>,
}

/// What happened. Each event is one entry of the audit chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    Started {
        params: BTreeMap<String, Value>,
        values: BTreeMap<String, Value>,
        nodes: Vec<(String, String, Option<Value>)>,
        /// R0.3: the cycle this instance is and the instance of the cycle before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cycle: Option<super::cycles::CycleLink>,
    },
    /// Fan-out copies made when their node was about to open.
    Expanded {
        def: String,
        copies: Vec<(String, Value)>,
    },
    Opened {
        node: String,
        window: Option<(DateTime<Utc>, DateTime<Utc>)>,
        due_at: Option<DateTime<Utc>>,
        min_until: Option<DateTime<Utc>>,
    },
    Skipped {
        node: String,
        reason: String,
    },
    /// An act that does not by itself complete the step.
    Acted {
        node: String,
        act: Act,
    },
    FormRecorded {
        node: String,
        data: BTreeMap<String, Value>,
    },
    VoteRecorded {
        node: String,
        result: VoteResult,
    },
    ObjectionRaised {
        node: String,
        act: Act,
    },
    Withdrawn {
        node: String,
        principal: String,
    },
    Delegated {
        node: String,
        from: String,
        to: String,
        /// The role handed over. Events recorded before it was added lack it: the role is then
        /// that of the delegating principal's acts on the step.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<String>,
    },
    Urged {
        node: String,
        act: Act,
    },
    Completed {
        node: String,
        outcome: Outcome,
    },
    /// 退回: `to` reopens; `reset` (what came after it) waits again; `reopened` (phases that
    /// hold `to`) are open again.
    Returned {
        from: String,
        to: String,
        reason: String,
        reset: Vec<String>,
        reopened: Vec<String>,
    },
    DeadlineSet {
        node: String,
        due_at: DateTime<Utc>,
    },
    /// 推诿: a return out of an `owned` step passes the matter on to `to`; the owner's limit
    /// (`due_at`) keeps running (R3.5). Followed by the escalations of the step's `on breach`.
    PassedOn {
        node: String,
        to: String,
        due_at: Option<DateTime<Utc>>,
    },
    Reminded {
        node: String,
        due_at: DateTime<Utc>,
    },
    /// The deadline passed with the step still open (超期).
    Overdue {
        node: String,
        due_at: DateTime<Utc>,
    },
    /// 追究责任: the breach is escalated to the accountable role, at the moment it occurs.
    Escalated {
        node: String,
        role: String,
        due_at: DateTime<Utc>,
    },
    Notified {
        node: String,
        role: String,
        due_at: DateTime<Utc>,
    },
    /// 提级办理 (`on breach reassign`): the role takes the late step over; it alone acts on it now.
    Reassigned {
        node: String,
        role: String,
        due_at: DateTime<Utc>,
    },
    WindowClosed {
        node: String,
        at: DateTime<Utc>,
    },
    /// R0.2: the step's deadline counts working days into `year`, whose calendar is not loaded:
    /// it is awaiting the calendar (待{year}年日历公布), counted from `from`.
    DeadlineAwaitingCalendar {
        node: String,
        year: i32,
        from: DateTime<Utc>,
    },
    /// R0.2: the same for a minimum duration in working days: the step cannot end before the
    /// year is added.
    MinDurationAwaitingCalendar {
        node: String,
        year: i32,
        from: DateTime<Utc>,
    },
    /// R0.2: the step's window counts working days into `year`, whose calendar is not loaded:
    /// the step is open but cannot be acted on until the year is added.
    WindowAwaitingCalendar {
        node: String,
        year: i32,
        from: DateTime<Utc>,
    },
    /// R0.2: the year's calendar was added (by `added_by`, transcribing `notice`): the step's
    /// waiting periods are computed. `window`, `due_at` / `min_until` are set when they now end
    /// in a covered year.
    CalendarApplied {
        node: String,
        year: i32,
        notice: CalendarNotice,
        added_by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due_at: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_until: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    },
    InstanceCompleted,
    InstanceRejected {
        node: String,
    },
    Cancelled {
        reason: String,
    },
    /// R0.3: the next cycle is due and needs fresh parameters: a task for `role` to start it.
    NextCycleDue {
        cycle: u32,
        instance: String,
        due_at: DateTime<Utc>,
        role: String,
    },
    /// R0.3: the next cycle fell due but could not start (the refusal's `code` and `reason`,
    /// e.g. a condition counting into a year without its calendar): recorded once instead of
    /// retried; `role`, when the policy names one, may start it by hand.
    NextCycleRefused {
        cycle: u32,
        instance: String,
        due_at: DateTime<Utc>,
        code: String,
        reason: String,
        role: Option<String>,
    },
    /// R0.3: the next cycle was opened as `instance` (created in the same transaction).
    NextCycleOpened {
        cycle: u32,
        instance: String,
        due_at: DateTime<Utc>,
    },
    /// Issue 11.1: the step's deadline moved from `from` to `to` (延期), by `amount` of the
    /// unit of its `extend … max`, for `reason`; who extended it is the event's actor. A breach
    /// already recorded stays.
    Extended {
        node: String,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        amount: u32,
        reason: String,
    },
    /// Issue 11.1: an extension of `amount` was asked for (延期申请), for `reason`; it moves the
    /// deadline when a role of the step's `extend … approved by` approves it (`Extended`, whose
    /// actor is the approver). Who asked is the event's actor.
    ExtensionRequested {
        node: String,
        amount: u32,
        reason: String,
    },
    /// Issue 11.1: the extension asked for was refused, for `reason`; the deadline stays.
    ExtensionRejected {
        node: String,
        reason: String,
    },
    /// Issue 11.2: the step was handed (转办) from the office holding `role` for it to `to`, for
    /// `reason`; who is the event's actor.
    Transferred {
        node: String,
        role: String,
        from: Option<String>,
        to: String,
        reason: String,
    },
    /// Issue 11.2: `role` was added to the step's approvers (加签) for `reason`.
    ApproverAdded {
        node: String,
        role: String,
        reason: String,
    },
    /// Issue 11.2: `role` was removed from the step's approvers (减签) for `reason`.
    ApproverRemoved {
        node: String,
        role: String,
        reason: String,
    },
    /// Issue 11.2: the step was copied to `office` for information (抄送); who is the event's
    /// actor.
    CopiedTo {
        node: String,
        office: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Issue 11.2: `principal` of `office` marked the copy of the step read (已阅).
    CopyRead {
        node: String,
        office: String,
        principal: String,
    },
    /// Issue 11.4: start parameters were corrected (更正) for `reason`; `values` are all the values
    /// computed from the parameters now, `steps` the open steps whose periods moved. Who is the
    /// event's actor.
    Corrected {
        params: Vec<ParamChange>,
        values: BTreeMap<String, Value>,
        reason: String,
        steps: Vec<RecomputedStep>,
    },
    /// Issue 11.5: the instance moved from version `from` to version `to` of its policy by the
    /// plan `plan`: `renamed` (old key, new key, new definition), `removed` (keys of steps never
    /// acted on), `added` (new steps, waiting), the new version's parameters taken from their
    /// defaults, and every value computed with the new version. Who is the event's actor.
    Migrated {
        from: String,
        to: String,
        plan: String,
        renamed: Vec<(String, String, String)>,
        removed: Vec<String>,
        added: Vec<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        params: BTreeMap<String, Value>,
        values: BTreeMap<String, Value>,
    },
    /// Issue 11.3: the instance is suspended (挂起) for `reason`; who is the event's actor.
    Suspended {
        reason: String,
    },
    /// Issue 11.3: the instance resumes (激活) for `reason`; each open deadline moved later by
    /// the working (or calendar) days it was suspended.
    Resumed {
        reason: String,
        deadlines: Vec<MovedDeadline>,
        /// The deadlines still waiting for a year's calendar (R0.2): how much the suspension adds
        /// to each, in its unit, counted on when the year comes.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        waiting: Vec<WaitingShift>,
    },
    /// R6.1: `role` is held by `office` for this instance (`node: None`) or for one fan-out copy
    /// (`node: Some(copy)`): recorded at start (a parameter, the starter's office), when a form
    /// field names the office, and when a fan-out makes its copies.
    Bound {
        role: String,
        office: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
    },
}

impl Event {
    /// The stored `kind` of the event.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Started { .. } => "started",
            Event::Expanded { .. } => "expanded",
            Event::Opened { .. } => "opened",
            Event::Skipped { .. } => "skipped",
            Event::Acted { .. } => "acted",
            Event::FormRecorded { .. } => "form_recorded",
            Event::VoteRecorded { .. } => "vote_recorded",
            Event::ObjectionRaised { .. } => "objection_raised",
            Event::Withdrawn { .. } => "withdrawn",
            Event::Delegated { .. } => "delegated",
            Event::Urged { .. } => "urged",
            Event::Completed { .. } => "completed",
            Event::Returned { .. } => "returned",
            Event::DeadlineSet { .. } => "deadline_set",
            Event::PassedOn { .. } => "passed_on",
            Event::Reminded { .. } => "reminded",
            Event::Overdue { .. } => "overdue",
            Event::Escalated { .. } => "escalated",
            Event::Notified { .. } => "notified",
            Event::Reassigned { .. } => "reassigned",
            Event::WindowClosed { .. } => "window_closed",
            Event::DeadlineAwaitingCalendar { .. } => "deadline_awaiting_calendar",
            Event::MinDurationAwaitingCalendar { .. } => "min_duration_awaiting_calendar",
            Event::WindowAwaitingCalendar { .. } => "window_awaiting_calendar",
            Event::CalendarApplied { .. } => "calendar_applied",
            Event::InstanceCompleted => "instance_completed",
            Event::InstanceRejected { .. } => "instance_rejected",
            Event::Cancelled { .. } => "cancelled",
            Event::NextCycleDue { .. } => "next_cycle_due",
            Event::NextCycleOpened { .. } => "next_cycle_opened",
            Event::NextCycleRefused { .. } => "next_cycle_refused",
            Event::Bound { .. } => "bound",
            Event::Extended { .. } => "extended",
            Event::ExtensionRequested { .. } => "extension_requested",
            Event::ExtensionRejected { .. } => "extension_rejected",
            Event::Suspended { .. } => "suspended",
            Event::Transferred { .. } => "transferred",
            Event::ApproverAdded { .. } => "approver_added",
            Event::ApproverRemoved { .. } => "approver_removed",
            Event::Resumed { .. } => "resumed",
            Event::CopiedTo { .. } => "copied_to",
            Event::CopyRead { .. } => "copy_read",
            Event::Corrected { .. } => "corrected",
            Event::Migrated { .. } => "migrated",
        }
    }

    /// The node the event is about, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            Event::Opened { node, .. }
            | Event::Skipped { node, .. }
            | Event::Acted { node, .. }
            | Event::FormRecorded { node, .. }
            | Event::VoteRecorded { node, .. }
            | Event::ObjectionRaised { node, .. }
            | Event::Withdrawn { node, .. }
            | Event::Delegated { node, .. }
            | Event::Urged { node, .. }
            | Event::Completed { node, .. }
            | Event::DeadlineSet { node, .. }
            | Event::PassedOn { node, .. }
            | Event::Reminded { node, .. }
            | Event::Overdue { node, .. }
            | Event::Escalated { node, .. }
            | Event::Notified { node, .. }
            | Event::Reassigned { node, .. }
            | Event::WindowClosed { node, .. }
            | Event::DeadlineAwaitingCalendar { node, .. }
            | Event::MinDurationAwaitingCalendar { node, .. }
            | Event::WindowAwaitingCalendar { node, .. }
            | Event::CalendarApplied { node, .. }
            | Event::Extended { node, .. }
            | Event::ExtensionRequested { node, .. }
            | Event::ExtensionRejected { node, .. }
            | Event::Transferred { node, .. }
            | Event::ApproverAdded { node, .. }
            | Event::ApproverRemoved { node, .. }
            | Event::CopiedTo { node, .. }
            | Event::CopyRead { node, .. }
            | Event::InstanceRejected { node } => Some(node),
            Event::Returned { from, .. } => Some(from),
            Event::Expanded { def, .. } => Some(def),
            Event::Bound { node, .. } => node.as_deref(),
            _ => None,
        }
    }
}

impl NodeState {
    /// When the step is due: an instant, none, or awaiting a year's calendar (R0.2).
    pub fn due(&self) -> Due {
        match (self.due_at, self.due_awaiting) {
            (Some(at), _) => Due::At(at),
            (None, Some(w)) => Due::AwaitingCalendar { year: w.year },
            (None, None) => Due::None,
        }
    }
}
