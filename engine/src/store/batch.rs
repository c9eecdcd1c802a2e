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

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use async_trait::async_trait;

use super::common::{chain_events, instance_order, validate_commit};
use super::log_append::{append_to_log, Append, LogAppend, LogHead};
use super::{Commit, CounterClaim, IdempotencyRecord, InstanceRecord, LateStep, OpenStepRow, StoreError, StoredEvent};
use crate::audit::merkle::Hash;
use crate::audit::GENESIS;

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
    /// [`write`]'s statements for commits of distinct instances but their events and open
    /// steps: every instance's version bumped from the one its commit expects (with its status,
    /// snapshot and time), then the idempotency records, the fired timers, the nodes' timers
    /// replaced and the breaches recorded ([`stage_rest`]). Gives, by instance, the stored hash
    /// of the event each commit follows (none for a commit at version 0, or when that event is
    /// missing); `None` when any of them would refuse — a version had moved or an instance is
    /// gone, a key was taken, a lease lost — and the caller rolls back. One statement where the
    /// store can (PostgreSQL); SQLite runs them in turn (a statement costs it no round trip).
    async fn stage_together(&mut self, commits: &[&Commit]) -> Result<Option<HashMap<String, Hash>>, StoreError>;
    /// Stores the commits' idempotency records; `false` when a key was already taken.
    async fn insert_idempotency(&mut self, keyed: &[(&Commit, &IdempotencyRecord)]) -> Result<bool, StoreError>;
    /// The events, and with `log` their leaves in the global tree (issue 12.1), each event's row
    /// naming its leaf's index (issue 12.3): written only if the stored tree still ends where
    /// `log` says, in one statement where the store can. `false`: the tree had moved, nothing
    /// written.
    /// `payloads`: each event's payload as stored ([`super::EventPayload::text`]). With the
    /// events, when they are written, the transaction's open steps replaced (as
    /// [`BatchWriter::replace_open_steps`]; one round trip for both on PostgreSQL).
    async fn insert_events(
        &mut self,
        events: &[&StoredEvent],
        payloads: &[&str],
        log: Option<&LogAppend<'_>>,
        open_steps: OpenStepsChange<'_>,
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
    /// The version's compare-and-set of [`BatchWriter::stage_together`] for one commit, in the
    /// plainest statements: with the one-row `VALUES`/`UNNEST` statements instead, a client's
    /// commits alone went from ~440–550/s to ~300–340/s on PostgreSQL and wrote 11 % more
    /// bytes on SQLite.
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
    /// Issue 12.1: holds off the appends of every other transaction (every node's) until this
    /// one ends. Taken just before a transaction's first append, after all its other row locks
    /// but those of the open steps' counts: the statements before it run while another
    /// transaction holds the log (two batches in flight, [`super::Store::batches_in_flight`]).
    /// SQLite's one writer needs nothing. `hints`: each instance with new events and the seq
    /// they follow, told to every node at commit (issue 9.6; PostgreSQL's NOTIFY, sent with the
    /// events' insert that follows).
    async fn lock_log(&mut self, hints: &[(&str, u64)]) -> Result<(), StoreError>;
    /// R3.7: holds off every other transaction (every node's) that raises or releases a counter
    /// until this one ends. Taken before a transaction's first row lock, by a transaction that
    /// will touch counters ([`touches_counters`]): counters are rows that commits of any instance
    /// share, and two transactions raising two of them in opposite orders, each holding one,
    /// would deadlock. SQLite's one writer needs nothing.
    async fn lock_counters(&mut self) -> Result<(), StoreError>;
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

/// The open-step rows a transaction replaces (issue 10.6): those of `(instance, node)` in
/// `nodes` deleted, `rows` (each with its instance) inserted.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct OpenStepsChange<'a> {
    pub nodes: &'a [(&'a str, &'a str)],
    pub rows: &'a [(&'a str, &'a OpenStepRow)],
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
#[cfg(feature = "sqlite")]
pub(super) fn followed_events<'c>(commits: &[&'c Commit]) -> Result<Vec<(&'c str, i64)>, StoreError> {
    let mut wanted = Vec::with_capacity(commits.len());
    for c in commits.iter().filter(|c| c.expected_version > 0) {
        wanted.push((c.instance.as_str(), super::common::to_i64(c.expected_version, "version")?));
    }
    Ok(wanted)
}

/// One commit alone in its transaction, with its own refusal (`Conflict`, `DuplicateKey`,
/// `TimerLost`, …): a store's `commit` and a batch of one, the same on both stores.
pub(super) async fn apply_commit<W: BatchWriter + ?Sized>(
    w: &mut W,
    head: &LogHead,
    commit: &Commit,
) -> Result<Vec<StoredEvent>, StoreError> {
    if touches_counters(commit) {
        w.lock_counters().await?;
    }
    let mut last = UnderLock::default();
    let stored = stage_commit(w, &mut last, commit).await?;
    last.write(w, head).await?;
    Ok(stored)
}

/// Whether a commit (or the first commit of the instance it spawns) raises or releases a
/// counter: its transaction takes [`BatchWriter::lock_counters`] first.
pub(super) fn touches_counters(commit: &Commit) -> bool {
    !commit.counters.is_empty()
        || !commit.released.is_empty()
        || commit.spawn.as_ref().is_some_and(|s| touches_counters(&s.first))
}

/// What a transaction's commits write last, under the log's lock ([`BatchWriter::lock_log`]):
/// their events with their leaves in the global tree, and their open steps (whose counts are the
/// rows every transaction shares). Everything else a transaction writes is keyed by the
/// instances whose versions it moved, whose rows it holds from its compare-and-set on (taken in
/// id order), but for counters, which it writes only holding their lock
/// ([`BatchWriter::lock_counters`], taken before any row); so a transaction holding the log
/// never waits for a row another one holds, and no two commit transactions can deadlock, while
/// two batches (`Store::batches_in_flight`) write all but this part side by side.
#[derive(Default)]
struct UnderLock<'c> {
    /// Borrowed from a batch written together, copies from the commits written one by one
    /// (whose answers own theirs).
    events: Vec<Cow<'c, StoredEvent>>,
    payloads: Vec<&'c str>,
    leaves: Vec<Hash>,
    /// The `(instance, node)`s whose rows each commit replaces, and its new rows, each with the
    /// commit's place in the transaction: a later commit to the same node replaces an earlier
    /// one's rows.
    open_step_nodes: Vec<(usize, &'c str, &'c str)>,
    open_step_rows: Vec<(usize, &'c str, &'c OpenStepRow)>,
    commits: usize,
}

/// How far an [`UnderLock`] was filled: a commit rolled back to its savepoint takes its part
/// out again.
#[derive(Clone, Copy)]
struct Mark([usize; 6]);

impl<'c> UnderLock<'c> {
    fn mark(&self) -> Mark {
        Mark([
            self.events.len(),
            self.payloads.len(),
            self.leaves.len(),
            self.open_step_nodes.len(),
            self.open_step_rows.len(),
            self.commits,
        ])
    }

    fn undo(&mut self, Mark([e, p, l, n, r, c]): Mark) {
        self.events.truncate(e);
        self.payloads.truncate(p);
        self.leaves.truncate(l);
        self.open_step_nodes.truncate(n);
        self.open_step_rows.truncate(r);
        self.commits = c;
    }

    /// A commit's part: its events as chained (and their leaves), its open steps.
    fn add(&mut self, commit: &'c Commit, events: &[StoredEvent], leaves: &[Hash]) {
        self.events.extend(events.iter().map(|e| Cow::Owned(e.clone())));
        self.payloads.extend(commit.events.iter().map(|e| e.payload.text()));
        self.leaves.extend_from_slice(leaves);
        self.add_open_steps(commit);
    }

    /// [`UnderLock::add`] of commits written together, whose events the caller keeps.
    fn add_borrowed(&mut self, commits: &[&'c Commit], events: &'c [Vec<StoredEvent>], leaves: &[Hash]) {
        self.events.extend(events.iter().flatten().map(Cow::Borrowed));
        self.leaves.extend_from_slice(leaves);
        for commit in commits {
            self.payloads.extend(commit.events.iter().map(|e| e.payload.text()));
            self.add_open_steps(commit);
        }
    }

    fn add_open_steps(&mut self, commit: &'c Commit) {
        let (k, instance) = (self.commits, commit.instance.as_str());
        self.commits += 1;
        self.open_step_nodes.extend(commit.open_step_nodes.iter().map(|n| (k, instance, n.as_str())));
        self.open_step_rows.extend(commit.open_step_rows.iter().map(|r| (k, instance, r)));
    }

    /// The nodes whose rows go, and the rows that stay: those no later commit of the
    /// transaction replaced.
    #[allow(clippy::type_complexity, reason = "two lists of borrowed pairs, as `replace_open_steps` takes them")]
    fn open_steps(&self) -> (Vec<(&'c str, &'c str)>, Vec<(&'c str, &'c OpenStepRow)>) {
        let mut last: HashMap<(&str, &str), usize> = HashMap::new();
        for &(k, instance, node) in &self.open_step_nodes {
            last.insert((instance, node), k);
        }
        let nodes = self.open_step_nodes.iter().map(|&(_, i, n)| (i, n)).collect();
        let rows = self
            .open_step_rows
            .iter()
            .filter(|&&(k, i, r)| last.get(&(i, r.node.as_str())).is_none_or(|&replaced| replaced <= k))
            .map(|&(_, i, r)| (i, r))
            .collect();
        (nodes, rows)
    }

    /// The hash of `instance`'s event `seq` when an earlier commit of this transaction made it
    /// (it is not in the table until [`UnderLock::write`]).
    fn hash_of(&self, instance: &str, seq: u64) -> Result<Option<Hash>, StoreError> {
        match self.events.iter().rev().find(|e| e.seq == seq && e.instance == instance) {
            Some(e) => super::common::decode_hash(&e.hash).map(Some),
            None => Ok(None),
        }
    }

    /// Each instance with new events and the seq they follow (an instance's commits in a row,
    /// one after the other, make one).
    fn hints(&self) -> Vec<(&str, u64)> {
        let mut hints: Vec<(&str, u64)> = Vec::new();
        let mut last: Option<(&str, u64)> = None;
        for e in &self.events {
            if last != Some((e.instance.as_str(), e.seq.saturating_sub(1))) {
                hints.push((e.instance.as_str(), e.seq.saturating_sub(1)));
            }
            last = Some((e.instance.as_str(), e.seq));
        }
        hints
    }

    /// Takes the log's lock and writes the events, their leaves and the open steps.
    async fn write<W: BatchWriter + ?Sized>(self, w: &mut W, head: &LogHead) -> Result<(), StoreError> {
        if self.events.is_empty() && self.open_step_nodes.is_empty() && self.open_step_rows.is_empty() {
            return Ok(());
        }
        w.lock_log(&self.hints()).await?;
        let (nodes, rows) = self.open_steps();
        let open_steps = OpenStepsChange { nodes: &nodes, rows: &rows };
        if self.events.is_empty() {
            return w.replace_open_steps(&nodes, &rows).await;
        }
        let events: Vec<&StoredEvent> = self.events.iter().map(|e| e.as_ref()).collect();
        let what = Append::EventsToo { payloads: &self.payloads, leaves: &self.leaves, open_steps };
        append_to_log(w, head, &events, what).await
    }
}

/// One commit's statements but those [`UnderLock`] keeps for the end of the transaction; on a
/// refusal `last` is as it was.
async fn stage_commit<'c, W: BatchWriter + ?Sized>(
    w: &mut W,
    last: &mut UnderLock<'c>,
    commit: &'c Commit,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mark = last.mark();
    let staged = async {
        insert_idempotency(w, commit).await?;
        // Issue 10.3: a start goes through the group committer as a commit that creates its
        // instance.
        let stored = match &commit.create {
            Some(instance) => stage_instance(w, last, instance, commit).await?,
            None => stage_body(w, last, commit).await?,
        };
        if let Some(spawn) = &commit.spawn {
            stage_instance(w, last, &spawn.instance, &spawn.first).await?;
        }
        Ok(stored)
    }
    .await;
    if staged.is_err() {
        last.undo(mark);
    }
    staged
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
async fn insert_idempotency<W: BatchWriter + ?Sized>(w: &mut W, commit: &Commit) -> Result<(), StoreError> {
    let Some(idem) = &commit.idempotency else {
        return Ok(());
    };
    if !w.insert_idempotency(&[(commit, idem)]).await? {
        return Err(StoreError::DuplicateKey { principal: idem.principal.clone(), key: idem.key.clone() });
    }
    Ok(())
}

/// Writes a new instance's row, its first commit and that commit's idempotency record in the
/// transaction (`Store::create_instance`), the events and open steps with the log's lock at its
/// end.
pub(super) async fn insert_instance<W: BatchWriter + ?Sized>(
    w: &mut W,
    head: &LogHead,
    instance: &InstanceRecord,
    first: &Commit,
) -> Result<Vec<StoredEvent>, StoreError> {
    if touches_counters(first) {
        w.lock_counters().await?;
    }
    insert_idempotency(w, first).await?;
    let mut last = UnderLock::default();
    let stored = stage_instance(w, &mut last, instance, first).await?;
    last.write(w, head).await?;
    Ok(stored)
}

/// A new instance's row and its first commit's statements but those of [`UnderLock`].
async fn stage_instance<'c, W: BatchWriter + ?Sized>(
    w: &mut W,
    last: &mut UnderLock<'c>,
    instance: &InstanceRecord,
    first: &'c Commit,
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
    stage_body(w, last, first).await
}

/// Everything of one commit after its idempotency record, the same on both stores, with the
/// statements a batch uses: the version's compare-and-set (a refusal named: `Conflict` with the
/// version now, or `InstanceNotFound`), the events chained on the last one (written by
/// [`UnderLock::write`]), the timer fired under its fence, the nodes' timers cancelled and
/// created, the counters raised and released.
async fn stage_body<'c, W: BatchWriter + ?Sized>(
    w: &mut W,
    last: &mut UnderLock<'c>,
    commit: &'c Commit,
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
    // An earlier commit of this transaction to the instance made the event it follows.
    let stored_prev = match stored_prev {
        Some(hash) => Some(hash),
        None if expected > 0 => last.hash_of(&commit.instance, expected)?,
        None => None,
    };
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
    if let Some((timer, fence)) = commit.fire {
        if !w.fire_timers(&[(timer, fence, commit.instance.as_str())]).await? {
            return Err(StoreError::TimerLost { timer, fence });
        }
    }
    replace_timers(w, &[commit]).await?;
    record_late(w, &[commit]).await?;
    for claim in &commit.counters {
        raise_counter(w, claim).await?;
    }
    for key in &commit.released {
        w.release_counter(key).await?;
    }
    last.add(commit, &stored, &leaves);
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
    if commits.iter().any(touches_counters) {
        w.lock_counters().await?;
    }
    let mut plan = Plan::of(commits);
    for (i, e) in plan.invalid.drain(..) {
        answers[i] = Some(Err(e));
    }
    let together: Vec<&Commit> = plan.together.iter().map(|&i| &commits[i]).collect();
    let written = if together.len() > 1 { write_in_savepoint(w, &together).await? } else { None };
    let mut last = UnderLock::default();
    if let Some((stored, leaves)) = &written {
        batched.fetch_add(together.len() as u64, std::sync::atomic::Ordering::Relaxed);
        last.add_borrowed(&together, stored, leaves);
    } else {
        plan.all_one_by_one(commits);
    }
    for &i in &plan.one_by_one {
        w.savepoint().await?;
        let answer = stage_commit(w, &mut last, &commits[i]).await;
        if answer.is_ok() {
            w.release_savepoint().await?;
        } else {
            w.rollback_to_savepoint().await?;
        }
        answers[i] = Some(answer);
    }
    // A failure here is the transaction's: every commit of the batch gets it.
    last.write(w, head).await?;
    if let Some((stored, _)) = written {
        for (&i, events) in plan.together.iter().zip(stored) {
            answers[i] = Some(Ok(events));
        }
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

/// A batch's events by commit, as chained, and their leaves: what [`write`] leaves to
/// [`UnderLock::write`].
type Written = (Vec<Vec<StoredEvent>>, Vec<Hash>);

/// Writes `commits` (of distinct instances, each from [`Plan::together`]) with one statement per
/// table, but for their events and open steps (the caller's [`UnderLock`]). `Ok(None)`: some
/// commit would be refused, and what was written must be rolled back; `Err`: the statements
/// themselves failed (the caller falls back too, and the commit by commit path reports the error
/// where it belongs).
async fn write<W: BatchWriter + ?Sized>(w: &mut W, commits: &[&Commit]) -> Result<Option<Written>, StoreError> {
    // Issue 10.3: starts go with the batch; their rows first, then the versions' compare-and-set
    // takes them from 0 like any other. A taken id or an unpublished policy (the insert's
    // foreign key fails) is named by the commit-by-commit path.
    let created: Vec<&InstanceRecord> = commits.iter().filter_map(|c| c.create.as_deref()).collect();
    if !created.is_empty() && w.insert_instance_rows(&created).await? != created.len() as u64 {
        return Ok(None);
    }
    let Some(found) = w.stage_together(commits).await? else {
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
    Ok(Some((stored, leaves)))
}

/// [`BatchWriter::stage_together`] after the versions, one call each: `false` when a key was
/// taken or a lease lost.
#[cfg(feature = "sqlite")]
pub(super) async fn stage_rest<W: BatchWriter + ?Sized>(w: &mut W, commits: &[&Commit]) -> Result<bool, StoreError> {
    let keyed = idempotency_records(commits);
    if !keyed.is_empty() && !w.insert_idempotency(&keyed).await? {
        return Ok(false);
    }
    let fires = fired_timers(commits);
    if !fires.is_empty() && !w.fire_timers(&fires).await? {
        return Ok(false);
    }
    replace_timers(w, commits).await?;
    record_late(w, commits).await?;
    Ok(true)
}

/// The commits' idempotency records, each with its commit.
pub(super) fn idempotency_records<'c>(commits: &[&'c Commit]) -> Vec<(&'c Commit, &'c IdempotencyRecord)> {
    commits.iter().filter_map(|c| c.idempotency.as_ref().map(|i| (*c, i))).collect()
}

/// The timers the commits fire: `(timer, fence, instance)`.
pub(super) fn fired_timers<'c>(commits: &[&'c Commit]) -> Vec<(i64, i64, &'c str)> {
    commits.iter().filter_map(|c| c.fire.map(|(timer, fence)| (timer, fence, c.instance.as_str()))).collect()
}

/// Issue 12.6: the breaches the commits record, into the lateness index.
async fn record_late<W: BatchWriter + ?Sized>(w: &mut W, commits: &[&Commit]) -> Result<(), StoreError> {
    let rows: Vec<(&str, &LateStep)> =
        commits.iter().flat_map(|c| c.late.iter().map(|r| (c.instance.as_str(), r))).collect();
    if !rows.is_empty() {
        w.insert_late_steps(&rows).await?;
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
async fn write_in_savepoint<W: BatchWriter + ?Sized>(
    w: &mut W,
    commits: &[&Commit],
) -> Result<Option<Written>, StoreError> {
    w.savepoint().await?;
    match write(w, commits).await {
        Ok(Some(written)) => {
            w.release_savepoint().await?;
            Ok(Some(written))
        }
        Ok(None) | Err(_) => {
            w.rollback_to_savepoint().await?;
            Ok(None)
        }
    }
}
