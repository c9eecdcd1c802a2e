//! Issue 10.3: a group-committed batch written with one statement per table — the versions'
//! compare-and-set, the previous hashes, the idempotency records, the events, the fired,
//! cancelled and new timers — instead of some nine statements per commit. Every statement is a
//! round trip (PostgreSQL) or was a hand-off to the driver's worker thread (SQLite: since, a
//! thread of the store's own runs them, `sqlite_writer.rs`), and those, not the databases, were
//! where a batch spent its time (BENCHMARKS.md).
//!
//! The flow is written once, here; each store gives its SQL as a [`BatchWriter`] (SQLite:
//! `VALUES` lists in `sqlite_batch.rs`; PostgreSQL: `UNNEST` arrays in `postgres_batch.rs`).
//!
//! A batch is all or nothing: [`write`] answers `None` as soon as one commit of it would be
//! refused (a version moved, a key reused, a timer's lease lost), and the store rolls the
//! savepoint back and writes the batch commit by commit, so each commit still gets its own
//! answer. Commits that raise or release counters, spawn an instance, create their own or move
//! it to another version never come here ([`Plan`]).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;

use super::common::{chain_events, instance_order, validate_commit};
use super::{Commit, CounterClaim, IdempotencyRecord, InstanceRecord, LateStep, OpenStepRow, StoreError, StoredEvent};
use crate::audit::merkle::{self, Frontier, Hash};
use crate::audit::{ChainedEvent, GENESIS};

/// One statement per table over many commits, in a store's SQL. `false` (or a missing hash):
/// some commit would be refused; the caller rolls back and goes commit by commit.
#[async_trait]
pub(super) trait BatchWriter: Send {
    /// Opens a savepoint in the open transaction (a batch goes together or not at all; a commit
    /// of the one-by-one path is kept or undone alone).
    async fn savepoint(&mut self) -> Result<(), StoreError>;
    /// Keeps what was written since [`BatchWriter::savepoint`].
    async fn release_savepoint(&mut self) -> Result<(), StoreError>;
    /// Undoes what was written since [`BatchWriter::savepoint`]; the transaction goes on.
    async fn rollback_to_savepoint(&mut self) -> Result<(), StoreError>;
    /// Bumps every instance's version from the one its commit expects (with its status,
    /// snapshot and time) and gives, by instance, the stored hash of the event each commit
    /// follows (none for a commit at version 0, or when that event is missing); `None` when any
    /// version had moved or an instance is gone. One statement where the store can: the
    /// compare-and-set and the read of what the new events chain on were two round trips.
    async fn advance_versions(&mut self, commits: &[&Commit]) -> Result<Option<HashMap<String, Hash>>, StoreError>;
    /// Stores the commits' idempotency records; `false` when a key was already taken.
    async fn insert_idempotency(&mut self, keyed: &[(&Commit, &IdempotencyRecord)]) -> Result<bool, StoreError>;
    /// The events, and with `log` their leaves in the global tree (issue 12.1), each event's row
    /// naming its leaf's index (issue 12.3): written only if the stored tree still ends where
    /// `log` says, in one statement where the store can. `false`: the tree had moved, nothing
    /// written.
    /// `payloads`: each event's payload as stored ([`super::EventPayload::text`]).
    async fn insert_events(
        &mut self,
        events: &[&StoredEvent],
        payloads: &[&str],
        log: Option<&LogAppend<'_>>,
    ) -> Result<bool, StoreError>;
    /// Marks `(timer, fence, instance)` fired; `false` when a lease was lost.
    async fn fire_timers(&mut self, fires: &[(i64, i64, &str)]) -> Result<bool, StoreError>;
    /// Cancels the live timers of `(instance, node)` in `cancel` and inserts the commits' new
    /// timers (either may be empty), in one statement where the store can.
    async fn replace_timers(&mut self, cancel: &[(&str, &str)], commits: &[&Commit]) -> Result<(), StoreError>;
    /// Deletes the open-step rows of `(instance, node)` in `nodes` (issue 10.6) and inserts
    /// `rows`, each with its instance (either may be empty), in one statement where the store
    /// can.
    async fn replace_open_steps(
        &mut self,
        nodes: &[(&str, &str)],
        rows: &[(&str, &OpenStepRow)],
    ) -> Result<(), StoreError>;
    /// Whether `(name, hash)` is a published policy version (a new instance must run on one).
    async fn policy_published(&mut self, name: &str, hash: &str) -> Result<bool, StoreError>;
    /// New instances' rows at version 0 (an instance's policy must be published: the foreign
    /// key refuses one that is not); how many were inserted, fewer when an id was taken.
    async fn insert_instance_rows(&mut self, instances: &[&InstanceRecord]) -> Result<u64, StoreError>;
    /// [`BatchWriter::advance_versions`] of one commit, in the plainest statements: with the
    /// one-row `VALUES`/`UNNEST` statements instead, a client's commits alone went from
    /// ~440–550/s to ~300–340/s on PostgreSQL and wrote 11 % more bytes on SQLite.
    async fn advance_version(&mut self, commit: &Commit) -> Result<Advanced, StoreError>;
    /// An instance's version, `None` when there is no such instance (to name a refusal).
    async fn version_of(&mut self, instance: &str) -> Result<Option<i64>, StoreError>;
    /// Raises counter `key` by one unless it is at `cap` already (a compare-and-set in the
    /// transaction, so two commits cannot both take the last place); `false` at the cap.
    async fn raise_counter_below(&mut self, key: &str, cap: i64) -> Result<bool, StoreError>;
    /// Lowers a counter by one, never below 0 (a place given back).
    async fn release_counter(&mut self, key: &str) -> Result<(), StoreError>;
    /// Issue 11.5: the instance runs on this version of its policy from now on.
    async fn set_policy_hash(&mut self, instance: &str, hash: &str) -> Result<(), StoreError>;
    /// Issue 12.1: the global tree's size and peaks (those its last leaf carries), the appends of
    /// other transactions held off until this one ends.
    async fn log_frontier(&mut self) -> Result<(u64, Vec<Hash>), StoreError>;
    /// Issue 12.1: leaves appended to the global tree, the last with the frontier after it,
    /// only if the stored tree still ends where `log` says (checked in the insert's own
    /// statement). `false`: the tree had moved, nothing written.
    async fn insert_log_leaves(&mut self, log: &LogAppend<'_>) -> Result<bool, StoreError>;
    /// Issue 12.6: rows of the lateness index, each with its instance.
    async fn insert_late_steps(&mut self, rows: &[(&str, &LateStep)]) -> Result<(), StoreError>;
}

/// What [`BatchWriter::advance_version`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Advanced {
    /// Nothing: the version had moved, or the instance is gone.
    Refused,
    /// The version bumped; the stored hash of the event the commit follows (`None`: the
    /// commit is at version 0, or that event is missing).
    Bumped(Option<Hash>),
}

/// The `(instance, seq)` of the event each commit follows (commits at version 0 follow none).
pub(super) fn followed_events<'c>(commits: &[&'c Commit]) -> Result<Vec<(&'c str, i64)>, StoreError> {
    let mut wanted = Vec::with_capacity(commits.len());
    for c in commits.iter().filter(|c| c.expected_version > 0) {
        wanted.push((c.instance.as_str(), super::common::to_i64(c.expected_version, "version")?));
    }
    Ok(wanted)
}

/// One commit alone, with its own refusal (`Conflict`, `DuplicateKey`, `TimerLost`, …): a
/// store's `commit` and a batch's commit-by-commit path, the same on both stores.
pub(super) async fn apply_commit<W: BatchWriter + ?Sized>(
    w: &mut W,
    head: &LogHead,
    commit: &Commit,
) -> Result<Vec<StoredEvent>, StoreError> {
    insert_idempotency(w, commit).await?;
    // Issue 10.3: a start goes through the group committer as a commit that creates its instance.
    let stored = match &commit.create {
        Some(instance) => insert_instance(w, head, instance, commit).await?,
        None => apply_body(w, head, commit).await?,
    };
    if let Some(spawn) = &commit.spawn {
        insert_instance(w, head, &spawn.instance, &spawn.first).await?;
    }
    Ok(stored)
}

/// Raises a counter by one under its cap, [`StoreError::CounterFull`] at the cap (R3.7).
async fn raise_counter<W: BatchWriter + ?Sized>(w: &mut W, claim: &CounterClaim) -> Result<(), StoreError> {
    let cap = claim.cap.map_or(Ok(i64::MAX), |c| super::common::to_i64(c, "cap"))?;
    if cap < 1 {
        return Err(StoreError::CounterFull { key: claim.key.clone(), cap: 0 });
    }
    if !w.raise_counter_below(&claim.key, cap).await? {
        return Err(StoreError::CounterFull { key: claim.key.clone(), cap: claim.cap.unwrap_or(u64::MAX) });
    }
    Ok(())
}

/// A commit's idempotency record, [`StoreError::DuplicateKey`] when its key was taken.
pub(super) async fn insert_idempotency<W: BatchWriter + ?Sized>(w: &mut W, commit: &Commit) -> Result<(), StoreError> {
    let Some(idem) = &commit.idempotency else {
        return Ok(());
    };
    if !w.insert_idempotency(&[(commit, idem)]).await? {
        return Err(StoreError::DuplicateKey { principal: idem.principal.clone(), key: idem.key.clone() });
    }
    Ok(())
}

/// Writes a new instance's row and its first commit (without its idempotency record).
pub(super) async fn insert_instance<W: BatchWriter + ?Sized>(
    w: &mut W,
    head: &LogHead,
    instance: &InstanceRecord,
    first: &Commit,
) -> Result<Vec<StoredEvent>, StoreError> {
    if !w.policy_published(&instance.policy_name, &instance.policy_hash).await? {
        return Err(StoreError::PolicyNotFound {
            name: instance.policy_name.clone(),
            hash: instance.policy_hash.clone(),
        });
    }
    if w.insert_instance_rows(&[instance]).await? != 1 {
        return Err(StoreError::InstanceExists { id: instance.id.clone() });
    }
    apply_body(w, head, first).await
}

/// Everything of one commit after its idempotency record, the same on both stores, with the
/// statements a batch uses: the version's compare-and-set (a refusal named: `Conflict` with the
/// version now, or `InstanceNotFound`), the events chained on the last one, the timer fired
/// under its fence, the nodes' timers cancelled and created, the counters raised and released.
pub(super) async fn apply_body<W: BatchWriter + ?Sized>(
    w: &mut W,
    head: &LogHead,
    commit: &Commit,
) -> Result<Vec<StoredEvent>, StoreError> {
    let stored_prev = match w.advance_version(commit).await? {
        Advanced::Bumped(hash) => hash,
        Advanced::Refused => {
            return Err(match w.version_of(&commit.instance).await? {
                Some(v) => StoreError::Conflict { current: super::common::to_u64(v, "version")? },
                None => StoreError::InstanceNotFound { id: commit.instance.clone() },
            })
        }
    };
    if let Some(hash) = &commit.policy_hash {
        w.set_policy_hash(&commit.instance, hash).await?;
    }
    let expected = commit.expected_version;
    let prev = if expected == 0 {
        GENESIS
    } else {
        stored_prev.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "instance `{}` is at version {expected} but has no event {expected}",
                commit.instance
            ))
        })?
    };
    let (stored, leaves) = chain_events(&commit.instance, commit.expected_version, prev, &commit.events);
    if !stored.is_empty() {
        let events: Vec<&StoredEvent> = stored.iter().collect();
        let payloads: Vec<&str> = commit.events.iter().map(|e| e.payload.text()).collect();
        append_to_log(w, head, &events, Append::EventsToo { payloads: &payloads, leaves: &leaves }).await?;
    }
    if let Some((timer, fence)) = commit.fire {
        if !w.fire_timers(&[(timer, fence, commit.instance.as_str())]).await? {
            return Err(StoreError::TimerLost { timer, fence });
        }
    }
    replace_timers(w, &[commit]).await?;
    replace_open_steps(w, &[commit]).await?;
    record_late(w, &[commit]).await?;
    for claim in &commit.counters {
        raise_counter(w, claim).await?;
    }
    for key in &commit.released {
        w.release_counter(key).await?;
    }
    Ok(stored)
}

/// Each commit's answer in a batch (`None`: not written), before the transaction commits.
pub(super) type Answers = Vec<Option<Result<Vec<StoredEvent>, StoreError>>>;

/// Writes a group-committed batch in `conn`'s open transaction, the same flow on both stores:
/// invalid commits answered at once; the commits that can go together with one statement per
/// table (counted in `batched`); the rest, and all of them if one would be refused, one by one,
/// each in a savepoint of its own. `Err`: the transaction itself failed (the batch must abort).
pub(super) async fn write_all<W: BatchWriter + ?Sized>(
    w: &mut W,
    head: &LogHead,
    commits: &[Commit],
    batched: &std::sync::atomic::AtomicU64,
) -> Result<Answers, StoreError> {
    let mut answers: Answers = vec![None; commits.len()];
    let mut plan = Plan::of(commits);
    for (i, e) in plan.invalid.drain(..) {
        answers[i] = Some(Err(e));
    }
    if plan.together.len() > 1 {
        let together: Vec<&Commit> = plan.together.iter().map(|&i| &commits[i]).collect();
        if let Some(stored) = write_in_savepoint(w, head, &together).await? {
            batched.fetch_add(together.len() as u64, std::sync::atomic::Ordering::Relaxed);
            for (&i, events) in plan.together.iter().zip(stored) {
                answers[i] = Some(Ok(events));
            }
            plan.together.clear();
        }
    }
    plan.all_one_by_one(commits);
    for i in plan.one_by_one {
        w.savepoint().await?;
        let answer = apply_commit(w, head, &commits[i]).await;
        if answer.is_ok() {
            w.release_savepoint().await?;
        } else {
            w.rollback_to_savepoint().await?;
        }
        answers[i] = Some(answer);
    }
    Ok(answers)
}

/// The answers once the transaction has committed (or failed to: then every commit it held
/// gets that error).
pub(super) fn settle(answers: Answers, committed: Result<(), StoreError>) -> Vec<Result<Vec<StoredEvent>, StoreError>> {
    answers
        .into_iter()
        .map(|r| match (r, &committed) {
            (Some(Ok(_)), Err(e)) => Err(e.clone()),
            (Some(r), _) => r,
            (None, _) => Err(StoreError::Invalid("a commit of the batch was skipped".into())),
        })
        .collect()
}

/// How a batch's commits are written: invalid ones answered at once, the first commit of each
/// instance that can go together, the rest one by one (by instance, in arrival order).
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub invalid: Vec<(usize, StoreError)>,
    pub together: Vec<usize>,
    pub one_by_one: Vec<usize>,
}

impl Plan {
    pub fn of(commits: &[Commit]) -> Plan {
        let mut plan = Plan::default();
        let mut seen = HashSet::with_capacity(commits.len());
        for i in instance_order(commits) {
            let commit = &commits[i];
            if let Err(e) = validate_commit(commit) {
                plan.invalid.push((i, e));
            } else if seen.insert(commit.instance.as_str()) && batchable(commit) {
                // Only an instance's first commit: the others follow it, one by one.
                plan.together.push(i);
            } else {
                plan.one_by_one.push(i);
            }
        }
        plan
    }

    /// Puts the commits meant to go together back with the others (their batch was refused).
    pub fn all_one_by_one(&mut self, commits: &[Commit]) {
        self.one_by_one.append(&mut self.together);
        // By instance, and in the order they came within one.
        self.one_by_one.sort_by(|&a, &b| commits[a].instance.cmp(&commits[b].instance).then(a.cmp(&b)));
    }
}

/// Whether a commit can be written by [`write`]: counters, spawns and policy switches keep their
/// own statements.
fn batchable(commit: &Commit) -> bool {
    commit.counters.is_empty() && commit.released.is_empty() && commit.spawn.is_none() && commit.policy_hash.is_none()
}

/// Writes `commits` (of distinct instances, each from [`Plan::together`]) with one statement per
/// table. `Ok(None)`: some commit would be refused, and what was written must be rolled back;
/// `Err`: the statements themselves failed (the caller falls back too, and the commit by commit
/// path reports the error where it belongs).
pub(super) async fn write<W: BatchWriter + ?Sized>(
    w: &mut W,
    head: &LogHead,
    commits: &[&Commit],
) -> Result<Option<Vec<Vec<StoredEvent>>>, StoreError> {
    // Issue 10.3: starts go with the batch; their rows first, then the versions' compare-and-set
    // takes them from 0 like any other. A taken id or an unpublished policy (the insert's
    // foreign key fails) is named by the commit-by-commit path.
    let created: Vec<&InstanceRecord> = commits.iter().filter_map(|c| c.create.as_deref()).collect();
    if !created.is_empty() && w.insert_instance_rows(&created).await? != created.len() as u64 {
        return Ok(None);
    }
    let Some(found) = w.advance_versions(commits).await? else {
        return Ok(None);
    };
    let mut stored = Vec::with_capacity(commits.len());
    let mut leaves = Vec::new();
    for c in commits {
        let prev = if c.expected_version == 0 { Some(GENESIS) } else { found.get(&c.instance).copied() };
        // A missing event: the commit by commit path names the corruption.
        let Some(prev) = prev else { return Ok(None) };
        let (events, their_leaves) = chain_events(&c.instance, c.expected_version, prev, &c.events);
        stored.push(events);
        leaves.extend(their_leaves);
    }
    let keyed: Vec<(&Commit, &IdempotencyRecord)> =
        commits.iter().filter_map(|c| c.idempotency.as_ref().map(|i| (*c, i))).collect();
    if !keyed.is_empty() && !w.insert_idempotency(&keyed).await? {
        return Ok(None);
    }
    let events: Vec<&StoredEvent> = stored.iter().flatten().collect();
    if !events.is_empty() {
        let payloads: Vec<&str> = commits.iter().flat_map(|c| c.events.iter().map(|e| e.payload.text())).collect();
        append_to_log(w, head, &events, Append::EventsToo { payloads: &payloads, leaves: &leaves }).await?;
    }
    let fires: Vec<(i64, i64, &str)> =
        commits.iter().filter_map(|c| c.fire.map(|(timer, fence)| (timer, fence, c.instance.as_str()))).collect();
    if !fires.is_empty() && !w.fire_timers(&fires).await? {
        return Ok(None);
    }
    replace_timers(w, commits).await?;
    replace_open_steps(w, commits).await?;
    record_late(w, commits).await?;
    Ok(Some(stored))
}

/// Off only in the engine benchmark's comparison of the commit path with and without the tree
/// ([`benchmark_without_audit_log`]); never in a server.
static AUDIT_LOG_OFF: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// For the engine benchmark only (issue 12.1, "approvals/s with and without the tree, one
/// run"): commits in this process stop (`true`) or resume (`false`) appending to the global
/// tree. A database written meanwhile has events no checkpoint covers; never use it in a
/// server or a test.
#[doc(hidden)]
pub fn benchmark_without_audit_log(off: bool) {
    AUDIT_LOG_OFF.store(off, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the benchmark turned the tree off ([`benchmark_without_audit_log`]).
pub(super) fn audit_log_off() -> bool {
    AUDIT_LOG_OFF.load(std::sync::atomic::Ordering::Relaxed)
}

/// Issue 12.1: the global tree's frontier (size and peaks) after this store's last append — a
/// hint that spares each commit a read before its append. Never trusted: the append writes its
/// leaves only if the stored last leaf still carries exactly these peaks at this size, checked
/// in the insert's own statement, and reads the frontier again when it does not (another node
/// appended, or the transaction that appended rolled back).
#[derive(Debug, Default)]
pub(super) struct LogHead(std::sync::Mutex<Option<(u64, Vec<Hash>)>>);

impl LogHead {
    fn get(&self) -> Option<(u64, Vec<Hash>)> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set(&self, frontier: Option<(u64, Vec<Hash>)>) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = frontier;
    }
}

/// Issue 12.1: the events appended, in this order, to the global Merkle tree — each one's leaf
/// at the next index, the frontier moved on (O(log n) hashes a leaf), in the commit's
/// transaction — and, with [`Append::EventsToo`], the events written with their leaves' indexes
/// in the same statement where the store can (no round trip of the tree's own).
pub(super) async fn append_to_log<W: BatchWriter + ?Sized>(
    w: &mut W,
    head: &LogHead,
    events: &[&StoredEvent],
    what: Append<'_>,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    if audit_log_off() {
        if let Append::EventsToo { payloads, .. } = what {
            w.insert_events(events, payloads, None).await?;
        }
        return Ok(());
    }
    let computed: Vec<Hash>;
    let leaves = match what {
        Append::EventsToo { leaves, .. } => leaves,
        Append::LeavesOnly => {
            computed = events.iter().map(|e| merkle::leaf_hash(&crate::audit::encode(&e.fields()))).collect();
            &computed
        }
    };
    let hinted = head.get();
    let fresh = hinted.is_none();
    let frontier = match hinted {
        Some(frontier) => frontier,
        None => w.log_frontier().await?,
    };
    let (log, mut after) = LogAppend::of(events, leaves, frontier)?;
    let mut written = write_append(w, events, &log, what).await?;
    if !written && !fresh {
        // The hint was stale: the frontier as stored now, under the log's lock.
        let (log, now) = LogAppend::of(events, leaves, w.log_frontier().await?)?;
        written = write_append(w, events, &log, what).await?;
        after = now;
    }
    if !written {
        head.set(None);
        return Err(StoreError::Corrupt("the audit tree's last leaf moved while this transaction held the log".into()));
    }
    head.set(Some(after));
    Ok(())
}

/// What [`append_to_log`] writes: the leaves and the events (a commit: with its payloads' stored
/// text and its leaves, from [`chain_events`]), or the leaves alone (the events written before
/// the tree, appended once: their leaves computed here).
#[derive(Debug, Clone, Copy)]
pub(super) enum Append<'a> {
    EventsToo { payloads: &'a [&'a str], leaves: &'a [Hash] },
    LeavesOnly,
}

async fn write_append<W: BatchWriter + ?Sized>(
    w: &mut W,
    events: &[&StoredEvent],
    log: &LogAppend<'_>,
    what: Append<'_>,
) -> Result<bool, StoreError> {
    match what {
        Append::EventsToo { payloads, .. } => w.insert_events(events, payloads, Some(log)).await,
        Append::LeavesOnly => w.insert_log_leaves(log).await,
    }
}

/// Leaves to append after the stored tree's last leaf `after` (its index and the peaks it
/// carries; `None`: the tree is empty), which the store checks in the insert's own statement.
pub(super) struct LogAppend<'a> {
    /// One for each event, in order.
    pub rows: Vec<LogLeaf<'a>>,
    pub after: Option<(u64, Vec<u8>)>,
}

impl<'a> LogAppend<'a> {
    /// The rows for `events` (their `leaves`) after the frontier `(size, peaks)`, and the
    /// frontier after them.
    fn of(
        events: &[&'a StoredEvent],
        leaves: &[Hash],
        (size, peaks): (u64, Vec<Hash>),
    ) -> Result<(LogAppend<'a>, (u64, Vec<Hash>)), StoreError> {
        let after = size.checked_sub(1).map(|last| (last, peaks.concat()));
        let mut frontier = Frontier::from_parts(size, peaks)
            .ok_or_else(|| StoreError::Corrupt(format!("the audit tree's peaks do not fit its size {size}")))?;
        let mut rows = Vec::with_capacity(events.len());
        for (e, &leaf) in events.iter().zip(leaves) {
            rows.push(LogLeaf { index: frontier.size(), instance: e.instance.as_str(), seq: e.seq, leaf, peaks: None });
            frontier.push(leaf);
        }
        if let Some(last) = rows.last_mut() {
            last.peaks = Some(frontier.peaks().concat());
        }
        Ok((LogAppend { rows, after }, (frontier.size(), frontier.peaks().to_vec())))
    }
}

/// A row of `audit_leaves`: the event, its leaf hash at its index, and — on the last leaf a
/// commit appends — the frontier after it.
pub(super) struct LogLeaf<'a> {
    pub index: u64,
    pub instance: &'a str,
    pub seq: u64,
    pub leaf: Hash,
    pub peaks: Option<Vec<u8>>,
}

/// Peaks as stored: 32 bytes each, largest first.
pub(super) fn peaks_from_bytes(bytes: &[u8]) -> Result<Vec<Hash>, StoreError> {
    if !bytes.len().is_multiple_of(32) {
        return Err(StoreError::Corrupt(format!("the audit tree's peaks are {} bytes", bytes.len())));
    }
    Ok(bytes
        .chunks(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        })
        .collect())
}

/// The commits' open-step rows (issue 10.6): those of the nodes they name deleted, the new ones
/// inserted — a statement each, only when there is something to write.
/// Issue 12.6: the breaches the commits record, into the lateness index.
async fn record_late<W: BatchWriter + ?Sized>(w: &mut W, commits: &[&Commit]) -> Result<(), StoreError> {
    let rows: Vec<(&str, &LateStep)> =
        commits.iter().flat_map(|c| c.late.iter().map(|r| (c.instance.as_str(), r))).collect();
    if !rows.is_empty() {
        w.insert_late_steps(&rows).await?;
    }
    Ok(())
}

async fn replace_open_steps<W: BatchWriter + ?Sized>(w: &mut W, commits: &[&Commit]) -> Result<(), StoreError> {
    let nodes: Vec<(&str, &str)> =
        commits.iter().flat_map(|c| c.open_step_nodes.iter().map(|n| (c.instance.as_str(), n.as_str()))).collect();
    let rows: Vec<(&str, &OpenStepRow)> =
        commits.iter().flat_map(|c| c.open_step_rows.iter().map(|r| (c.instance.as_str(), r))).collect();
    if !nodes.is_empty() || !rows.is_empty() {
        w.replace_open_steps(&nodes, &rows).await?;
    }
    Ok(())
}

/// The commits' timers: those of the nodes they name cancelled, the new ones inserted — one
/// call, only when there is something to write.
async fn replace_timers<W: BatchWriter + ?Sized>(w: &mut W, commits: &[&Commit]) -> Result<(), StoreError> {
    let cancel: Vec<(&str, &str)> = commits
        .iter()
        .flat_map(|c| c.cancel_timers_for_nodes.iter().map(|n| (c.instance.as_str(), n.as_str())))
        .collect();
    if !cancel.is_empty() || commits.iter().any(|c| !c.new_timers.is_empty()) {
        w.replace_timers(&cancel, commits).await?;
    }
    Ok(())
}

/// [`write`] inside a savepoint of `conn`'s transaction: kept when the batch is written, rolled
/// back when a commit of it would be refused (`Ok(None)`). `Err`: the savepoint itself failed,
/// and with it the transaction.
pub(super) async fn write_in_savepoint<W: BatchWriter + ?Sized>(
    w: &mut W,
    head: &LogHead,
    commits: &[&Commit],
) -> Result<Option<Vec<Vec<StoredEvent>>>, StoreError> {
    w.savepoint().await?;
    match write(w, head, commits).await {
        Ok(Some(stored)) => {
            w.release_savepoint().await?;
            Ok(Some(stored))
        }
        Ok(None) | Err(_) => {
            w.rollback_to_savepoint().await?;
            Ok(None)
        }
    }
}
