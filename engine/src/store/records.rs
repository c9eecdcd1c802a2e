//! The records the [`Store`](super::Store) takes and gives: policies, instances and their states, events and
//! their payloads, timers, principals and tokens, commits, the audit log's rows, open steps and
//! pages. Plain data; the store's contract is the trait in `mod.rs`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::Value;

#[cfg(doc)]
use super::Store;
use super::StoreError;
use crate::audit::{ChainedEvent, EventFields};

/// The largest page [`Store::list_instances`] returns.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// A published policy version.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRecord {
    /// The policy's name.
    pub name: String,
    /// The content hash of its compiled IR: identifies the version.
    pub hash: String,
    /// The version label the author wrote in the header.
    pub version_label: String,
    /// The DSL source text.
    pub source: String,
    /// The compiled graph IR.
    pub ir: Value,
    /// When it was first published.
    pub published_at: DateTime<Utc>,
}

/// The result of [`Store::publish_policy`].
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// The stored record: the one just written, or the earlier one with the same name and hash.
    pub record: PolicyRecord,
    /// Whether this call wrote it.
    pub created: bool,
}

/// An instance read for a command (issue 10): its record without the snapshot, and its state as
/// of the record's version, parsed from the stored text straight into the core's type (no
/// `serde_json::Value` on the way: a burst of timers spent a fifth of its time there).
#[derive(Debug, Clone)]
pub struct LoadedState {
    /// The row, `snapshot` left `Null`.
    pub record: InstanceRecord,
    pub state: crate::core::State,
    /// The stored snapshot's length in bytes (what the runtime's cache estimates a state from).
    pub snapshot_bytes: usize,
}

/// An instance row: which policy version it runs and how far its log goes.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRecord {
    /// The instance id.
    pub id: String,
    /// The policy's name.
    pub policy_name: String,
    /// The policy version (content hash) the instance runs; replay under another is refused.
    pub policy_hash: String,
    /// The seq of the last event (0 before the first).
    pub version: u64,
    /// The core's status word (e.g. `running`, `completed`).
    pub status: String,
    /// The core's state as of `version`. Stored as a cache written every few events (issue
    /// 10.1): a read folds the events after the stored one in, so a record read is current.
    pub snapshot: Value,
    /// The version of the stored snapshot (`version` or a little less): the runtime writes the
    /// next one [`SNAPSHOT_EVERY`] events after it.
    pub snapshot_version: u64,
    /// When the instance was created.
    pub created_at: DateTime<Utc>,
    /// When the last commit touched it.
    pub updated_at: DateTime<Utc>,
}

/// How many events may follow the stored snapshot before a commit writes a new one (issue
/// 10.1). Fewer snapshots, fewer bytes per commit; more, a shorter fold on a cold read. Sixteen
/// is three to eight approvals: a cold read folds at most 15 events (~40 µs).
pub const SNAPSHOT_EVERY: u64 = 16;

/// Whether a commit taking an instance from a stored snapshot of `snapshot_version` to `version`
/// (and `running` or not) writes its snapshot: the first commit (the row is created with it),
/// every [`SNAPSHOT_EVERY`] events, and when the instance ends, so a closed instance reads
/// without a fold.
pub fn snapshot_due(snapshot_version: u64, version: u64, running: bool) -> bool {
    snapshot_version == 0 || !running || version.saturating_sub(snapshot_version) >= SNAPSHOT_EVERY
}

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// When it happened (stored in whole microseconds).
    pub at: DateTime<Utc>,
    /// The acting principal (or a system actor such as `timer`).
    pub actor: String,
    /// The role the principal acted in; `Some("")` is stored as `None`.
    pub role: Option<String>,
    /// The event kind; must not be empty.
    pub kind: String,
    /// The event data.
    pub payload: EventPayload,
}

/// An event's data with its two texts, made once where the event is decided: the canonical
/// JSON (RFC 8785, [`crate::audit::canonical_json`]) that is hashed, and the JSON that is
/// stored. The group committer is one task for every caller, so what it does per event bounds
/// throughput; with these it only hashes and writes (issue 10). The stored text is serde_json's,
/// not the canonical one, because it must read back as the same value: the canonical text
/// writes `100.0` as `100`, which reads back as an integer.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPayload {
    /// Shared with the stored event the commit answers with (no copy in the committer).
    value: std::sync::Arc<Value>,
    canonical: String,
    text: String,
}

impl EventPayload {
    pub fn new(value: Value) -> Self {
        let canonical = crate::audit::canonical_json(&value);
        // A `Value` always serializes (its map keys are strings).
        let text = serde_json::to_string(&value).unwrap_or_default();
        EventPayload { value: std::sync::Arc::new(value), canonical, text }
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The value, shared: what a [`StoredEvent`] of this payload holds.
    pub fn shared(&self) -> std::sync::Arc<Value> {
        self.value.clone()
    }

    /// The canonical text: what the chain and the global tree hash.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The JSON text: what is stored, and reads back as [`EventPayload::value`].
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl From<Value> for EventPayload {
    fn from(value: Value) -> Self {
        EventPayload::new(value)
    }
}

/// An appended event with its place in the log and its chain hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The instance id.
    pub instance: String,
    /// Position in the instance's log, from 1.
    pub seq: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The acting principal.
    pub actor: String,
    /// The role, if any.
    pub role: Option<String>,
    /// The event kind.
    pub kind: String,
    /// The event data, shared with the [`EventPayload`] it was committed from (the committer
    /// does not copy it: issue 10).
    pub payload: std::sync::Arc<Value>,
    /// The previous event's hash (64 zeros for seq 1), lower-case hex.
    pub prev_hash: String,
    /// This event's chain hash, lower-case hex.
    pub hash: String,
}

/// A timer to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTimer {
    /// The instance it belongs to (must be the committing instance).
    pub instance: String,
    /// The graph node (step path) it belongs to; timers are cancelled by node.
    pub node: String,
    /// What the timer is (`deadline`, `reminder`, `window_opens`, …).
    pub kind: String,
    /// When it becomes due.
    pub due_at: DateTime<Utc>,
    /// Data for the core when it fires.
    pub payload: Value,
}

/// Where a timer is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerState {
    /// Waiting for its due time.
    Pending,
    /// Leased by a node that is firing it.
    Claimed,
    /// Fired (final).
    Fired,
    /// Cancelled before it fired (final).
    Cancelled,
}

/// A timer row.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerRecord {
    /// The timer id.
    pub id: i64,
    /// The instance it belongs to.
    pub instance: String,
    /// The graph node it belongs to.
    pub node: String,
    /// What the timer is.
    pub kind: String,
    /// When it becomes due.
    pub due_at: DateTime<Utc>,
    /// Its state.
    pub state: TimerState,
    /// The node holding (or last holding) the lease.
    pub lease_owner: Option<String>,
    /// When the current lease ends.
    pub lease_until: Option<DateTime<Utc>>,
    /// Bumped by every claim; a fire must name the current one.
    pub fence: i64,
    /// Data for the core when it fires.
    pub payload: Value,
}

/// An idempotency record: the response to replay when the same principal retries the same key.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    /// The principal that sent the request.
    pub principal: String,
    /// The client's idempotency key.
    pub key: String,
    /// A hash of the request body, to tell a retry from a different request under the same key.
    pub request_hash: String,
    /// The response to replay.
    pub response: Value,
}

/// A principal of the HTTP API: who acts, in which office, with which roles. Its bearer tokens
/// are stored apart, only as SHA-256 hashes ([`Store::create_principal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRecord {
    /// The principal's stable name (recorded as the actor of its events).
    pub name: String,
    /// The office (科室, 党工委 …) it belongs to.
    pub office: String,
    /// The roles it may act in (policy roles, and `admin` for publishing and the clock).
    pub roles: Vec<String>,
    /// When it was first created.
    pub created_at: DateTime<Utc>,
}

/// How many hex digits of a token's hash name it in listings and revocations.
pub const TOKEN_ID_LEN: usize = 12;

/// A bearer token as listed: its id (the first [`TOKEN_ID_LEN`] hex digits of its SHA-256; the
/// token itself is never kept), whose it is, and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub principal: String,
    pub office: String,
    pub roles: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Issue 9.6: another node committed events of `instance` after seq `after`. Only a hint for
/// the event stream: the events themselves are read from the store, the one truth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitHint {
    pub instance: String,
    pub after: u64,
}

/// A web session as stored (issue 9.6): by the SHA-256 of its id, with the office and roles it
/// was made with, the token it was made from and its CSRF secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id_hash: String,
    pub principal: String,
    pub office: String,
    pub roles: Vec<String>,
    pub token_hash: String,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// R0.2: a working-day calendar year added at run time, as stored (table `calendar_years`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarYearRecord {
    pub year: i32,
    /// The year's file as added (the format of `engine/calendars/cn/YYYY.json`).
    pub body: String,
    pub added_at: DateTime<Utc>,
    /// The principal who added it.
    pub added_by: String,
}

/// One atomic step of an instance: events to append and everything that goes with them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Commit {
    /// The instance id.
    pub instance: String,
    /// The version the caller decided on; the commit fails with [`StoreError::Conflict`]
    /// unless the instance is still there.
    pub expected_version: u64,
    /// The events to append, numbered `expected_version + 1…`.
    pub events: Vec<NewEvent>,
    /// The instance's status after these events.
    pub status: String,
    /// The instance's snapshot after these events, as JSON text serialized straight from the
    /// state, when this commit writes one ([`snapshot_due`]); `None` leaves the stored one, and
    /// readers fold the events after it (issue 10.1).
    pub snapshot: Option<String>,
    /// Timers to create (state pending, fence 0).
    pub new_timers: Vec<NewTimer>,
    /// Nodes whose pending or claimed timers to cancel (before `new_timers` are created).
    pub cancel_timers_for_nodes: Vec<String>,
    /// A timer this commit fires, as `(timer id, fence)` from its claim.
    pub fire: Option<(i64, i64)>,
    /// The idempotency record to store with the commit.
    pub idempotency: Option<IdempotencyRecord>,
    /// Counters to raise by one in the same transaction, each under its cap (R3.7: a place in a
    /// cycle's quota); a counter at its cap fails the commit whole with
    /// [`StoreError::CounterFull`].
    pub counters: Vec<CounterClaim>,
    /// Counters to lower by one in the same transaction (never below 0): a place given back
    /// (R3.7: a return reset the rating that held it).
    pub released: Vec<String>,
    /// An instance to create in the same transaction (R0.3: the next cycle, opened exactly
    /// once with the event that records it): created after this commit's body, like
    /// [`Store::create_instance`]; its own first commit may not spawn again.
    pub spawn: Option<Box<Spawn>>,
    /// The instance this commit creates (a start, group-committed like any command): its row
    /// is written at version 0 and the commit applied to it, as [`Store::create_instance`]
    /// does. `expected_version` must be 0.
    pub create: Option<Box<InstanceRecord>>,
    /// Issue 10.6: the nodes whose open-step rows this commit replaces (their rows are deleted
    /// first), …
    pub open_step_nodes: Vec<String>,
    /// … and those nodes' rows now (`core::open_step_changes`).
    pub open_step_rows: Vec<OpenStepRow>,
    /// Issue 11.5: the version of its policy (hash) the instance runs from this commit on (a
    /// migration's); `None` keeps it.
    pub policy_hash: Option<String>,
    /// Issue 12.6: the deadlines this commit records as breached, with who was late.
    pub late: Vec<LateStep>,
}

/// Issue 12.6: a deadline breached (逾期), and a role (with its bound office, when it has one)
/// that was late: a row of the lateness index oversight reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateStep {
    pub node: String,
    pub role: String,
    pub office: Option<String>,
    pub due_at: DateTime<Utc>,
    pub late_at: DateTime<Utc>,
}

/// Issue 12.6: a breach as oversight reads it: the instance, its policy, and the [`LateStep`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateRecord {
    pub instance: String,
    pub policy: String,
    pub step: LateStep,
}

/// Issue 12.1: the global Merkle tree over every event: how many leaves, and its root (RFC 6962).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditTree {
    pub size: u64,
    pub root: crate::audit::merkle::Hash,
}

/// Issue 12.1: one leaf of the global tree: the event it is, and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLeaf {
    pub index: u64,
    pub instance: String,
    pub seq: u64,
    pub leaf: crate::audit::merkle::Hash,
}

/// Issue 12.2: a signed checkpoint of the global tree as stored: the signed note's text and, for
/// queries, the size and root it commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheckpointRecord {
    pub size: u64,
    pub root: crate::audit::merkle::Hash,
    /// The signed note (C2SP tlog-checkpoint text and its signature lines).
    pub note: String,
    pub made_at: DateTime<Utc>,
}

/// Issue 12.4: a leaf of the global tree with the event it stands for, `None` when the event's
/// row is gone (a deletion the leaf outlived).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub leaf: AuditLeaf,
    pub event: Option<StoredEvent>,
}

/// Issue 11.5: a migration plan as stored (table `migration_plans`): the plan itself is JSON
/// text the runtime reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationPlanRecord {
    pub id: String,
    pub policy: String,
    pub from_hash: String,
    pub to_hash: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// One reader of an open step, as the table `open_steps` keeps it (issue 10.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenStepRow {
    pub node: String,
    /// Who the step is listed for, as `core::Reader::key` writes it.
    pub reader: String,
    pub due_at: Option<DateTime<Utc>>,
    pub overdue: bool,
}

/// Whose inbox to read ([`Store::inbox`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxQuery {
    /// The reader keys of the principal (`core::Reader::keys_of`).
    pub readers: Vec<String>,
    /// The page, from 1 (1 with `after`).
    pub page: u32,
    /// Steps per page, from 1 to [`MAX_PAGE_SIZE`].
    pub page_size: u32,
    /// The page starts after this step instead of at `page` (a keyset cursor: a page deep in a
    /// long inbox is read like the first, where `page` reads and drops every step before it).
    pub after: Option<InboxCursor>,
}

/// A place in an inbox's order (soonest due first, no deadline last, then instance and step):
/// the step a page ends with, given back to read the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxCursor {
    pub due_at: Option<DateTime<Utc>>,
    pub instance: String,
    pub node: String,
}

impl InboxCursor {
    /// The cursor after `step`.
    pub fn after(step: &OpenStepRef) -> InboxCursor {
        InboxCursor { due_at: step.due_at, instance: step.instance.clone(), node: step.node.clone() }
    }

    /// The cursor as a URL-safe token (base64url of its JSON; opaque to callers).
    pub fn encode(&self) -> String {
        use base64::Engine as _;
        let json = serde_json::json!([due_key(self.due_at), self.instance, self.node]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
    }

    /// A token [`InboxCursor::encode`] made; `None` for anything else.
    pub fn decode(token: &str) -> Option<InboxCursor> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
        let (key, instance, node): (i64, String, String) = serde_json::from_slice(&bytes).ok()?;
        let due_at = due_of_key(key).ok()?;
        Some(InboxCursor { due_at, instance, node })
    }
}

/// An open step of an inbox: where it is and when it is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenStepRef {
    pub instance: String,
    pub node: String,
    pub due_at: Option<DateTime<Utc>>,
}

/// One place taken in a counter (`policy/period/quota`, `policy/period/instances`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterClaim {
    pub key: String,
    /// The value the counter may reach; `None`: no cap.
    pub cap: Option<u64>,
}

/// A new instance created with a commit to another one.
#[derive(Debug, Clone, PartialEq)]
pub struct Spawn {
    pub instance: InstanceRecord,
    pub first: Commit,
}

/// Filter and page for [`Store::list_instances`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceFilter {
    /// Only instances of this policy (by name).
    pub policy: Option<String>,
    /// Only instances with this status.
    pub status: Option<String>,
    /// Only instances with (`true`) or without (`false`) an open step past its deadline (from
    /// the open-step table, issue 10.6).
    pub overdue: Option<bool>,
    /// Only instances with an open step that this role acts on (from the open-step table): the
    /// role's keys (`core::Reader::awaiting_keys`), the first also as the prefix of `KEY@office`.
    pub awaiting: Option<[String; 2]>,
    /// The page, from 1.
    pub page: u32,
    /// Instances per page, from 1 to [`MAX_PAGE_SIZE`].
    pub page_size: u32,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items on this page, oldest first (by creation time, then id).
    pub items: Vec<T>,
    /// How many items match the filter in all.
    pub total: u64,
    /// The page number, from 1.
    pub page: u32,
    /// The page size asked for.
    pub page_size: u32,
}

impl TimerState {
    /// The word stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TimerState::Pending => "pending",
            TimerState::Claimed => "claimed",
            TimerState::Fired => "fired",
            TimerState::Cancelled => "cancelled",
        }
    }

    /// Reads the stored word.
    pub fn parse(word: &str) -> Option<TimerState> {
        match word {
            "pending" => Some(TimerState::Pending),
            "claimed" => Some(TimerState::Claimed),
            "fired" => Some(TimerState::Fired),
            "cancelled" => Some(TimerState::Cancelled),
            _ => None,
        }
    }
}

impl fmt::Display for TimerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Default for InstanceFilter {
    fn default() -> Self {
        InstanceFilter { policy: None, status: None, overdue: None, awaiting: None, page: 1, page_size: 50 }
    }
}

impl ChainedEvent for StoredEvent {
    fn fields(&self) -> EventFields<'_> {
        EventFields {
            seq: self.seq,
            instance: &self.instance,
            at: self.at,
            actor: &self.actor,
            role: self.role.as_deref(),
            kind: &self.kind,
            payload: &self.payload,
        }
    }
    fn prev_hash(&self) -> &str {
        &self.prev_hash
    }
    fn hash(&self) -> &str {
        &self.hash
    }
}

/// Issue 10.6: the `due_key` of an open-step row: the deadline in microseconds, or `i64::MAX`
/// for a step without one (sorted last).
pub(crate) fn due_key(due: Option<DateTime<Utc>>) -> i64 {
    due.map_or(i64::MAX, |d| d.timestamp_micros())
}

/// The deadline a `due_key` stands for.
pub(crate) fn due_of_key(key: i64) -> Result<Option<DateTime<Utc>>, StoreError> {
    if key == i64::MAX {
        return Ok(None);
    }
    DateTime::from_timestamp_micros(key)
        .map(Some)
        .ok_or_else(|| StoreError::Corrupt(format!("open step due key {key} is out of range")))
}
