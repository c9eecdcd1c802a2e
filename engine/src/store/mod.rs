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
mod error;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod fold;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod group;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod log_append;
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
#[cfg(feature = "postgres")]
mod postgres_writer;
mod records;
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
#[cfg(feature = "sqlite")]
mod sqlite_upgrade;
#[cfg(feature = "sqlite")]
mod sqlite_writer;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use error::{ErrorSource, StoreError};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use group::{GroupCommitConfig, GroupCommitStats, GroupCommitter};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[doc(hidden)]
pub use log_append::benchmark_without_audit_log;
pub use records::*;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use records::{due_key, due_of_key};

/// What [`Store::commit_many`] answers: each commit's result, in the order given, and the
/// commits given back.
pub type BatchResults = (Vec<Result<Vec<StoredEvent>, StoreError>>, Vec<Commit>);

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
    /// Order inside the transaction (one that raises or releases a counter takes the counters'
    /// lock first): the idempotency record ([`StoreError::DuplicateKey`]), the
    /// version check ([`StoreError::Conflict`], [`StoreError::InstanceNotFound`]), the fired
    /// timer ([`StoreError::TimerLost`]), cancellations by node, new timers, then, under the
    /// audit log's lock, the events with their leaves and the open steps. The
    /// instance's `updated_at` becomes the latest event time (the current time if there are no
    /// events).
    async fn commit(&self, commit: Commit) -> Result<Vec<StoredEvent>, StoreError>;

    /// Commits a batch in one database transaction with a savepoint per commit: each commit
    /// succeeds or fails alone, and the batch costs one durable write. Results are in the order
    /// of `commits`. Commits are applied in the order of their instance ids (stably, so commits
    /// to one instance keep their order), which keeps concurrent batches from deadlocking. If
    /// the transaction itself fails, every commit fails. The commits come back with the results:
    /// the batch is handed over whole (SQLite's writer thread), and the callers, not the
    /// committer, free them.
    async fn commit_many(&self, commits: Vec<Commit>) -> BatchResults;

    /// How many [`Store::commit_many`] calls the group committer may have running at once, on
    /// batches of distinct instances. One for a store with one writer (SQLite); two for one
    /// whose transactions write side by side up to the audit log's lock (PostgreSQL: one batch
    /// writes its rows while the one before holds the log and syncs).
    fn batches_in_flight(&self) -> usize {
        1
    }

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
