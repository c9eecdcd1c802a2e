//! Storage: the [`Store`] trait, its records, and the SQLite and PostgreSQL implementations.
//!
//! The store knows nothing of the core's types: an event is a record with a `kind` string and a
//! JSON payload, an instance a row with a status string and a JSON snapshot. What the store
//! guarantees is the shape of the data under concurrency and faults:
//!
//! - An instance's events are numbered 1, 2, 3, … without gaps, and each carries the audit-chain
//!   hashes ([`crate::audit`]) that the store computes from the previous event's hash in the
//!   same transaction that appends it. Events are never updated or deleted (both backends refuse
//!   it with a trigger).
//! - [`Store::commit`] is one transaction: it appends only if the instance is still at
//!   `expected_version` (optimistic concurrency; otherwise [`StoreError::Conflict`] and nothing is
//!   recorded), and in the same transaction updates the instance row, cancels and creates timers,
//!   marks a fired timer under its fence, and records the idempotency key.
//! - A timer fires exactly once: [`Store::claim_due_timers`] leases due timers and bumps their
//!   `fence`; a commit that fires a timer names `(id, fence)` and fails whole with
//!   [`StoreError::TimerLost`] unless that exact claim is still current. The lease only bounds how
//!   long a crashed node's timers wait.
//! - [`Store::commit_many`] commits a batch in one database transaction, one savepoint per
//!   commit, so a batch costs one fsync and a failing commit fails alone. [`GroupCommitter`]
//!   gathers concurrent callers' commits into such batches.
//!
//! Times are stored in whole microseconds (see [`crate::audit::truncate_to_micros`]).

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod audit_rows;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod batch;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod common;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod fold;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod group;
#[cfg(feature = "sqlite")]
pub mod packed;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "postgres")]
mod postgres_audit;
#[cfg(feature = "postgres")]
mod postgres_batch;
#[cfg(feature = "postgres")]
mod postgres_commit;
#[cfg(feature = "postgres")]
mod postgres_instances;
#[cfg(feature = "postgres")]
mod postgres_open_steps;
#[cfg(feature = "postgres")]
mod postgres_principals;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "sqlite")]
mod sqlite_audit;
#[cfg(feature = "sqlite")]
mod sqlite_batch;
#[cfg(feature = "sqlite")]
mod sqlite_commit;
#[cfg(feature = "sqlite")]
mod sqlite_instances;
#[cfg(feature = "sqlite")]
mod sqlite_open_steps;
#[cfg(feature = "sqlite")]
mod sqlite_principals;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::audit::{ChainedEvent, EventFields, VerifyError};

#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[doc(hidden)]
pub use batch::benchmark_without_audit_log;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use group::{GroupCommitConfig, GroupCommitStats, GroupCommitter};

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

/// A type-erased, cloneable error source (a database driver's error, say).
pub type ErrorSource = Arc<dyn std::error::Error + Send + Sync>;

/// Everything a store can fail with. Each variant has a stable code ([`StoreError::code`]);
/// messages never contain SQL. Driver errors are kept as the `source` for logs.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The instance is no longer at the expected version: reload and decide again.
    #[error("the instance changed meanwhile: it is now at version {current}")]
    Conflict {
        /// The instance's current version.
        current: u64,
    },
    /// The fired timer is no longer claimed with this fence (its lease passed to another node,
    /// or it was cancelled or fired).
    #[error("timer {timer} is no longer held under fence {fence}")]
    TimerLost {
        /// The timer id.
        timer: i64,
        /// The fence the commit named.
        fence: i64,
    },
    /// The idempotency key was already used by this principal.
    #[error("idempotency key `{key}` was already used by `{principal}`")]
    DuplicateKey {
        /// The principal.
        principal: String,
        /// The key.
        key: String,
    },
    /// No instance with this id.
    #[error("no instance `{id}`")]
    InstanceNotFound {
        /// The instance id.
        id: String,
    },
    /// An instance with this id exists already.
    #[error("instance `{id}` already exists")]
    InstanceExists {
        /// The instance id.
        id: String,
    },
    /// No such policy version.
    #[error("no policy `{name}` with hash `{hash}`")]
    PolicyNotFound {
        /// The policy name.
        name: String,
        /// The policy hash.
        hash: String,
    },
    /// The request breaks the store's contract (a caller bug).
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// The instance's audit chain does not verify.
    #[error(transparent)]
    ChainBroken(#[from] VerifyError),
    /// The database cannot be reached (connection refused, pool timed out or closed).
    #[error("the database is unavailable")]
    Unavailable(#[source] ErrorSource),
    /// The database aborted the transaction for a reason that a retry may clear (serialization
    /// failure, deadlock, busy).
    #[error("the database asked for a retry")]
    Transient(#[source] ErrorSource),
    /// Stored data does not decode (a bad JSON text, an out-of-range number).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// Any other database failure.
    #[error("the database failed")]
    Database(#[source] ErrorSource),
    /// Applying the schema migrations failed.
    #[error("the database schema could not be migrated")]
    Migration(#[source] ErrorSource),
    /// The group committer's task has stopped.
    #[error("the commit queue is closed")]
    Closed,
    /// A counter is at its cap (R3.7): another commit took the last place; decide again.
    #[error("counter `{key}` is at its cap of {cap}")]
    CounterFull {
        /// The counter.
        key: String,
        /// Its cap.
        cap: u64,
    },
    /// The database refused a value as data (PostgreSQL's class 22, e.g. a NUL character in
    /// text, 22021, or a number out of range, 22003): the request's fault, never retried.
    #[error("the database refused a value: {0}")]
    BadValue(String),
}

impl StoreError {
    /// The stable code of this error, e.g. `STORE001`.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Conflict { .. } => "STORE001",
            StoreError::TimerLost { .. } => "STORE002",
            StoreError::DuplicateKey { .. } => "STORE003",
            StoreError::InstanceNotFound { .. } => "STORE004",
            StoreError::InstanceExists { .. } => "STORE005",
            StoreError::PolicyNotFound { .. } => "STORE006",
            StoreError::Invalid(_) => "STORE007",
            StoreError::ChainBroken(_) => "STORE008",
            StoreError::Unavailable(_) => "STORE009",
            StoreError::Transient(_) => "STORE010",
            StoreError::Corrupt(_) => "STORE011",
            StoreError::Database(_) => "STORE012",
            StoreError::Migration(_) => "STORE013",
            StoreError::Closed => "STORE014",
            StoreError::CounterFull { .. } => "STORE015",
            StoreError::BadValue(_) => "STORE016",
        }
    }
}

/// The storage contract. Both implementations pass the same conformance suite
/// (`engine/tests/it/store.rs`). Use it as `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Publishes a policy version; idempotent on `(name, hash)`: publishing the same pair again
    /// returns the stored record with `created: false` and changes nothing.
    async fn publish_policy(&self, policy: PolicyRecord) -> Result<Published, StoreError>;

    /// A policy version by hash, or the most recently published version of the name when `hash`
    /// is `None`.
    async fn get_policy(&self, name: &str, hash: Option<&str>) -> Result<Option<PolicyRecord>, StoreError>;

    /// The hash of the most recently published version of `name`, without its source and IR: a
    /// start by name reads this on every call and finds the compiled program in the runtime's
    /// cache by hash (issue 10: parsing the IR on every start was ~3 % of an approval's CPU).
    async fn latest_policy_hash(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// The latest version of every policy, by name.
    async fn list_policies(&self) -> Result<Vec<PolicyRecord>, StoreError>;

    /// Every version of a policy, oldest first.
    async fn policy_versions(&self, name: &str) -> Result<Vec<PolicyRecord>, StoreError>;

    /// Creates an instance and commits its first batch in one transaction.
    ///
    /// `instance.version` must be 0, and `first.instance` must be `instance.id` with
    /// `first.expected_version` 0. The row is written with `instance`'s policy and `created_at`;
    /// its status, snapshot, version and `updated_at` then come from `first`, applied like any
    /// [`Store::commit`] (events, timers, idempotency record). Fails with
    /// [`StoreError::PolicyNotFound`] unless the policy version is published, and with
    /// [`StoreError::InstanceExists`] if the id is taken.
    async fn create_instance(&self, instance: InstanceRecord, first: Commit) -> Result<Vec<StoredEvent>, StoreError>;

    /// Commits atomically (see [`Commit`] and the module documentation); returns the appended
    /// events with their seq and hashes. On any error nothing is recorded.
    ///
    /// Order inside the transaction: the idempotency record ([`StoreError::DuplicateKey`]), the
    /// version check ([`StoreError::Conflict`], [`StoreError::InstanceNotFound`]), the events,
    /// the fired timer ([`StoreError::TimerLost`]), cancellations by node, new timers. The
    /// instance's `updated_at` becomes the latest event time (the current time if there are no
    /// events).
    async fn commit(&self, commit: Commit) -> Result<Vec<StoredEvent>, StoreError>;

    /// Commits a batch in one database transaction with a savepoint per commit: each commit
    /// succeeds or fails alone, and the batch costs one durable write. Results are in the order
    /// of `commits`. Commits are applied in the order of their instance ids (stably, so commits
    /// to one instance keep their order), which keeps concurrent batches from deadlocking. If
    /// the transaction itself fails, every commit fails.
    async fn commit_many(&self, commits: &[Commit]) -> Vec<Result<Vec<StoredEvent>, StoreError>>;

    /// An instance row.
    async fn load_instance(&self, id: &str) -> Result<Option<InstanceRecord>, StoreError>;

    /// The rows of those of `ids` that exist, in no particular order: one read for a batch of
    /// claimed timers (issue 10.5) instead of one each. The default reads them one by one.
    async fn load_instances(&self, ids: &[String]) -> Result<Vec<InstanceRecord>, StoreError> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            found.extend(self.load_instance(id).await?);
        }
        Ok(found)
    }

    /// Those of `ids` that exist, for commands (issue 10): each record without its snapshot and
    /// its state as of its version, parsed straight from the stored text; in no particular order.
    async fn load_states(&self, ids: &[String]) -> Result<Vec<LoadedState>, StoreError>;

    /// Instances matching the filter, oldest first, one page.
    async fn list_instances(&self, filter: &InstanceFilter) -> Result<Page<InstanceRecord>, StoreError>;

    /// Issue 10.6: one page of the open steps listed under any of the query's reader keys (for
    /// a principal: those a role of theirs acts on, a bound role only where it is bound to their
    /// office; was escalated to or starts the next cycle in; those delegated to them), soonest
    /// due first (steps without a deadline last), then by instance and node; each step once;
    /// from `query.after` on when it names a place. Read from the table the commits keep (the
    /// total from the counts its triggers keep), not from the instances.
    async fn inbox(&self, query: &InboxQuery) -> Result<Page<OpenStepRef>, StoreError>;

    /// Whether the open-step table holds every instance's rows: `false` only for a database that
    /// held instances before the table existed, until [`Store::put_open_steps`] has been run for
    /// each and [`Store::mark_open_steps_built`] called.
    async fn open_steps_built(&self) -> Result<bool, StoreError>;

    /// Replaces all the open-step rows of an instance with `rows`, if the instance is still at
    /// `version` (`false` when it moved: read it again). For building the table, not for commits.
    async fn put_open_steps(&self, instance: &str, version: u64, rows: &[OpenStepRow]) -> Result<bool, StoreError>;

    /// Records that the open-step table is built.
    async fn mark_open_steps_built(&self) -> Result<(), StoreError>;

    /// Up to `limit` events of an instance with seq greater than `after_seq`, in order.
    async fn events(&self, instance: &str, after_seq: u64, limit: u32) -> Result<Vec<StoredEvent>, StoreError>;

    /// The events of an instance up to a time, for replay `as_of`: the longest prefix of the log
    /// whose events all happened at or before `at`.
    async fn events_until(&self, instance: &str, at: DateTime<Utc>) -> Result<Vec<StoredEvent>, StoreError>;

    /// The idempotency record of a principal's key.
    async fn get_idempotency(&self, principal: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// The earliest instant a pending timer falls due or a claimed timer's lease expires;
    /// `None` when no timer is pending or claimed. The timer service sleeps until then
    /// (issue 10.5) instead of polling.
    async fn next_timer_at(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Claims up to `limit` timers that are due (pending with `due_at <= now`) or whose lease
    /// has expired (claimed with `lease_until <= now`), earliest due first: each is set to
    /// claimed by `owner` until `now + lease`, with its fence bumped. `now` is `None` for the
    /// database's clock (PostgreSQL's `now()`; for SQLite, an embedded database, the process's
    /// clock), `Some` for a simulated clock. On PostgreSQL, concurrent claimers skip each other's
    /// locked rows (`FOR UPDATE SKIP LOCKED`), so two nodes never claim one timer at once.
    async fn claim_due_timers(
        &self,
        owner: &str,
        now: Option<DateTime<Utc>>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<TimerRecord>, StoreError>;

    /// The timers of an instance that have not fired or been cancelled (pending or claimed),
    /// earliest due first.
    async fn pending_timers(&self, instance: &str) -> Result<Vec<TimerRecord>, StoreError>;

    /// Recomputes the instance's audit chain from its stored events; returns how many events
    /// were checked, or [`StoreError::ChainBroken`] naming the first event that does not match
    /// (including events missing before the instance's version).
    async fn verify(&self, instance: &str) -> Result<u64, StoreError>;

    /// Stores a token hash for a principal, in one transaction: the principal is created (or its
    /// office and roles replaced; its `created_at` stays) and the hash is added to its tokens.
    /// The hash must be 64 lower-case hex digits (the SHA-256 of the token) and not stored yet
    /// ([`StoreError::Invalid`] otherwise).
    async fn create_principal(&self, principal: PrincipalRecord, token_hash: &str) -> Result<(), StoreError> {
        self.create_token(principal, token_hash, None).await
    }

    /// [`Store::create_principal`], with a token that stops working at `expires_at` (issue 9.4).
    async fn create_token(
        &self,
        principal: PrincipalRecord,
        token_hash: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;

    /// The principal a token hash belongs to, while the token has not expired (wall clock) nor
    /// been revoked.
    async fn principal_by_token_hash(&self, token_hash: &str) -> Result<Option<PrincipalRecord>, StoreError>;

    /// Every stored token (never its text): by principal, then creation.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Revokes (deletes) the tokens of `principal`: all of them, or the one whose id (the first
    /// [`TOKEN_ID_LEN`] hex digits of its hash) is `id`. How many were revoked.
    async fn revoke_tokens(&self, principal: &str, id: Option<&str>) -> Result<u64, StoreError>;

    /// Every principal, by name.
    async fn list_principals(&self) -> Result<Vec<PrincipalRecord>, StoreError>;

    /// Stores a web session; expired sessions go, and the principal's oldest beyond `cap`
    /// (counting this one) are ended, in the same transaction.
    async fn put_session(&self, session: SessionRecord, cap: usize) -> Result<(), StoreError>;

    /// The live (unexpired, by the wall clock) session with this id hash.
    async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// Ends a session (signing out, or its token gone).
    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError>;

    /// Issue 9.6: moves the simulated clock shared by the nodes on this database to `to`, or
    /// leaves it where it is if it is later; the shared time afterwards.
    async fn advance_simulated_clock(&self, to: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError>;

    /// The shared simulated time, if a node ever set it.
    async fn simulated_clock(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Hints of what every node commits, for the event stream of several nodes sharing one
    /// database (PostgreSQL's LISTEN/NOTIFY); `None` where one node is all there is (SQLite).
    /// No default: a store that wraps another must pass it on (a default would turn the
    /// feature off without a word, as it nearly did for `principal_changes`). Only with a store
    /// (the channel is tokio's; the pure build has none).
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    async fn commit_hints(&self) -> Result<Option<tokio::sync::mpsc::Receiver<CommitHint>>, StoreError>;

    /// The names of principals whose tokens were revoked or whose roles were replaced, by any
    /// node or by the CLI on this database (PostgreSQL's LISTEN/NOTIFY), so that each node's
    /// token cache forgets them at once; `None` where the store cannot tell (SQLite: one server,
    /// whose own revocations forget at once, and the CLI's reach it within the cache's TTL).
    /// No default, as for `commit_hints`.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    async fn principal_changes(&self) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, StoreError>;

    /// Stores an idempotency record that goes with no instance commit (a policy publication, a
    /// move of the simulated clock); [`StoreError::DuplicateKey`] if the principal used the key
    /// already, and then nothing changes.
    async fn put_idempotency(&self, record: IdempotencyRecord) -> Result<(), StoreError>;

    /// The value of a counter (0 if it was never raised); see [`Commit::counters`].
    async fn counter(&self, key: &str) -> Result<u64, StoreError>;

    /// R0.2: stores a calendar year added at run time; a year stored before is replaced.
    async fn put_calendar_year(&self, year: CalendarYearRecord) -> Result<(), StoreError>;

    /// R0.2: the calendar years added at run time, by year.
    async fn calendar_years(&self) -> Result<Vec<CalendarYearRecord>, StoreError>;

    /// Issue 11.5: stores a migration plan; [`StoreError::DuplicateKey`] if its id is taken.
    async fn put_migration_plan(&self, plan: MigrationPlanRecord) -> Result<(), StoreError>;

    /// Issue 11.5: the plan with this id, if any.
    async fn migration_plan(&self, id: &str) -> Result<Option<MigrationPlanRecord>, StoreError>;

    /// Issue 12.1: the global Merkle tree over every event as it stands: its size and root.
    async fn audit_tree(&self) -> Result<AuditTree, StoreError>;

    /// Issue 12.1: appends to the global tree up to `limit` of the events written before it
    /// existed (listed at its migration), oldest first, in one transaction ordered with the
    /// commits' appends; how many (0 once none is left).
    async fn backfill_audit_log(&self, limit: u32) -> Result<u64, StoreError>;

    /// Issue 12.1: up to `limit` leaves of the global tree from index `from`, in order.
    async fn audit_leaves(&self, from: u64, limit: u32) -> Result<Vec<AuditLeaf>, StoreError>;

    /// Issue 12.4: up to `limit` leaves from index `from`, in order, each with its event.
    async fn audit_entries(&self, from: u64, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;

    /// Issue 12.4: the leaves of one instance's events, in order. Reads the whole log (the table
    /// has no index by instance, to keep the commit path short).
    async fn audit_leaves_of(&self, instance: &str) -> Result<Vec<AuditLeaf>, StoreError>;

    /// Issue 12.3: each of an instance's events with its leaf index in the global tree, as the
    /// event's row says (`None`: written before the rows said it), in seq order, by primary key.
    /// Not to be trusted: a caller checks the leaf it names.
    async fn event_leaf_indexes(&self, instance: &str) -> Result<Vec<(u64, Option<u64>)>, StoreError>;

    /// Issue 12.2: stores a signed checkpoint; `false` when one of that size is stored already
    /// (kept: the first stands).
    async fn put_audit_checkpoint(&self, checkpoint: AuditCheckpointRecord) -> Result<bool, StoreError>;

    /// Issue 12.6: the breaches recorded from `from` (inclusive) to `to` (exclusive), by time,
    /// at most `limit` (from the lateness index, not the histories).
    async fn late_steps(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<LateRecord>, StoreError>;

    /// Issue 12.6: whether the lateness index covers the breaches recorded before it existed.
    async fn late_steps_built(&self) -> Result<bool, StoreError>;

    /// Issue 12.6: the instances whose histories record a breach (an `overdue` event).
    async fn instances_with_breaches(&self) -> Result<Vec<String>, StoreError>;

    /// Issue 12.6: rows of the lateness index for one instance (a row there already is kept).
    async fn put_late_steps(&self, instance: &str, rows: &[LateStep]) -> Result<(), StoreError>;

    /// Issue 12.6: records that the lateness index covers the earlier breaches.
    async fn mark_late_steps_built(&self) -> Result<(), StoreError>;

    /// Issue 12.2: the checkpoint of the largest tree, if any was made.
    async fn latest_audit_checkpoint(&self) -> Result<Option<AuditCheckpointRecord>, StoreError>;

    /// Periodic maintenance of the storage files; SQLite runs `wal_checkpoint(RESTART)` so the
    /// WAL stays bounded. The [`GroupCommitter`] calls it on an interval. Default: nothing.
    async fn checkpoint(&self) -> Result<(), StoreError> {
        Ok(())
    }
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
