//! The durable runtime: the pure core plus a [`Store`], a [`Clock`] and the timer service.
//!
//! A command flows: load the instance's state and version → `core::decide` → one
//! [`Commit`] (events with their hash chain, the snapshot when due, the timer changes, the
//! idempotency record) through the group committer → on a version conflict, reload and decide
//! again. A due timer flows the same way: claim with a lease → `decide(Fire)` → a commit that
//! also marks the timer fired under its fence, so it fires exactly once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use civicflow_dsl::value::Value;
use serde::{Deserialize, Serialize};

use crate::audit::truncate_to_micros;
use crate::calendar::{Calendar, CalendarError};
use crate::clock::Clock;
use crate::core::{self, Action, Actor, Command, Context, Event, Program, Refusal, State, TimerKind};
use crate::store::{
    snapshot_due, Commit, GroupCommitter, IdempotencyRecord, InstanceRecord, LateStep, NewEvent, NewTimer,
    PolicyRecord, Published, Store, StoreError, StoredEvent,
};

mod audit_log;
mod audit_proofs;
mod cache;
mod calendars;
mod late_steps;
mod migrate;
mod open_steps;
mod related;
mod verify;

pub use open_steps::open_step_rows;
mod timers;

pub use crate::audit::replay::StateMismatch;
pub use audit_log::CheckpointPolicy;
pub use cache::{estimated_bytes, CacheStats, CommandCopy, InstanceCache, DEFAULT_CACHE_BYTES};
pub use calendars::AddedYear;
pub use migrate::{MigrationPlan, MigrationReport, PlannedInstance, PlannedOutcome, RefusedInstance};

/// How many times a command is decided again after losing a race for the instance.
const RETRIES: usize = 8;
/// The same for a timer firing (idempotent, and racing other nodes' timers).
const TIMER_RETRIES: usize = 200;
/// Instances whose due timers one node fires at the same time.
const FIRE_CONCURRENCY: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0}")]
    Refused(Refusal),
    #[error("the policy has {} error(s)", .0.as_slice().len())]
    Invalid(civicflow_dsl::Diagnostics),
    #[error("no {what} `{id}`")]
    NotFound { what: &'static str, id: String },
    /// The same idempotency key was used before with a different request.
    #[error("idempotency key `{key}` was used for a different request")]
    KeyReused { key: String },
    #[error("the instance is busy; try again")]
    Busy,
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Issue 12.3: a proof or checkpoint asked of a tree size or leaf the log does not have.
    #[error("{0}")]
    OutOfRange(String),
    /// A calendar year that cannot be added (CAL003, CAL004, CAL006).
    #[error("{0}")]
    Calendar(CalendarError),
}

impl RuntimeError {
    pub fn code(&self) -> &'static str {
        match self {
            RuntimeError::Refused(r) => r.code(),
            RuntimeError::Invalid(_) => "POLICY_INVALID",
            RuntimeError::NotFound { .. } => "NOT_FOUND",
            RuntimeError::KeyReused { .. } => "IDEMPOTENCY_KEY_REUSED",
            RuntimeError::Busy => "BUSY",
            RuntimeError::Corrupt(_) => "CORRUPT",
            RuntimeError::OutOfRange(_) => "OUT_OF_RANGE",
            RuntimeError::Store(e) => e.code(),
            RuntimeError::Calendar(e) => e.code(),
        }
    }
}

/// An idempotency key with the hash of the request it came with.
#[derive(Clone, Debug)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

/// The result of a command: what it recorded. Stored as the idempotent response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub instance: String,
    /// The instance's version after the command.
    pub version: u64,
    /// The seqs of the events it recorded (empty for a replayed or no-op command).
    pub seqs: Vec<u64>,
    /// Whether this is the stored result of an earlier identical request.
    #[serde(default)]
    pub replayed: bool,
    /// The events as the commit stored them, so that an answer need not read them back (issue
    /// 10.4). Not part of the idempotent response: empty on a replay, where the seqs say which
    /// events to read.
    #[serde(skip)]
    pub recorded: Vec<StoredEvent>,
}

pub struct Runtime {
    store: Arc<dyn Store>,
    committer: GroupCommitter,
    clock: Arc<dyn Clock>,
    /// Swapped whole when a year is added (R0.2); a command decides on the calendar it read.
    calendar: RwLock<Arc<Calendar>>,
    programs: Mutex<HashMap<String, Arc<Program>>>,
    /// This node's name, as lease owner of the timers it claims.
    node: String,
    /// Held by a round of [`Runtime::fire_all_due`]: the timer service's round and the one after
    /// a simulated clock moved take turns, so the second waits for timers the first has claimed
    /// (which it would skip) to be fired before it returns.
    firing: tokio::sync::Mutex<()>,
    /// R0.2: the stored calendar years this node has swapped in, with when each was added, so
    /// that a year another node added (or replaced) reaches this one without a restart.
    calendar_seen: Mutex<HashMap<i32, DateTime<Utc>>>,
    /// When the timer service last looked for calendar years added by other nodes.
    calendar_checked: Mutex<Option<std::time::Instant>>,
    /// Issue 10.1: hot instances' states, for commands (not for reads: see `cache.rs`).
    cache: InstanceCache,
    /// Issue 10.5: when the timer service means to wake next (microseconds since the epoch;
    /// `i64::MAX` when it sleeps for its whole interval), and the bell a commit rings when it
    /// creates a timer due before that.
    next_wake: std::sync::atomic::AtomicI64,
    wake: tokio::sync::Notify,
    /// Issue 12.3: roots of the global tree's perfect subtrees, for proofs.
    audit_nodes: audit_proofs::NodeCache,
}

/// Issue 12.6: the deadlines `events` record as breached, with who was late (as the step stands
/// after them).
fn late_steps(program: &Program, next: &State, events: &[Event], now: DateTime<Utc>) -> Vec<LateStep> {
    let mut out = Vec::new();
    for e in events {
        if let Event::Overdue { node, due_at } = e {
            for (role, office) in core::responsible(program, next, node) {
                out.push(LateStep { node: node.clone(), role, office, due_at: *due_at, late_at: now });
            }
        }
    }
    out
}

impl Runtime {
    pub fn new(
        store: Arc<dyn Store>,
        committer: GroupCommitter,
        clock: Arc<dyn Clock>,
        calendar: Arc<Calendar>,
        node: String,
    ) -> Self {
        Runtime {
            store,
            committer,
            clock,
            calendar: RwLock::new(calendar),
            programs: Mutex::new(HashMap::new()),
            node,
            firing: tokio::sync::Mutex::new(()),
            calendar_seen: Mutex::new(HashMap::new()),
            calendar_checked: Mutex::new(None),
            cache: InstanceCache::new(DEFAULT_CACHE_BYTES),
            next_wake: std::sync::atomic::AtomicI64::new(i64::MAX),
            wake: tokio::sync::Notify::new(),
            audit_nodes: audit_proofs::NodeCache::default(),
        }
    }

    /// The same runtime with an instance cache of `bytes` (estimated); 0 turns it off.
    pub fn with_cache_bytes(mut self, bytes: usize) -> Self {
        self.cache = InstanceCache::new(bytes);
        self
    }

    /// What the instance cache holds and has served.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The instance as this runtime's cache holds it, if it does: for tests and diagnostics (a
    /// cached state at version v must equal the replay of the first v stored events).
    pub fn cached(&self, id: &str) -> Option<(InstanceRecord, State)> {
        self.cache.peek(id).map(|c| (c.0.clone(), c.1.clone()))
    }

    /// What this runtime's group committer has written so far.
    pub fn commit_stats(&self) -> crate::store::GroupCommitStats {
        self.committer.stats()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The working-day calendar now (years added at run time included).
    pub fn calendar(&self) -> Arc<Calendar> {
        match self.calendar.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Compiles and publishes a policy; publishing the same text again is a no-op.
    pub async fn publish(&self, source: &str) -> Result<Published, RuntimeError> {
        let compiled = civicflow_dsl::compile(source).map_err(RuntimeError::Invalid)?;
        let ir = serde_json::to_value(&compiled.policy).map_err(|e| RuntimeError::Corrupt(e.to_string()))?;
        let record = PolicyRecord {
            name: compiled.policy.name.clone(),
            hash: compiled.hash.clone(),
            version_label: compiled.policy.version.clone().unwrap_or_default(),
            source: source.to_string(),
            ir,
            published_at: self.clock.now(),
        };
        Ok(self.store.publish_policy(record).await?)
    }

    /// The compiled program of a published version (cached by hash); by name alone, the latest
    /// version's, whose hash is read without its source and IR.
    pub async fn program(&self, name: &str, hash: Option<&str>) -> Result<Arc<Program>, RuntimeError> {
        let not_found =
            || RuntimeError::NotFound { what: "policy", id: hash.map_or(name.to_string(), |h| format!("{name}@{h}")) };
        let hash = match hash {
            Some(h) => h.to_string(),
            None => self.store.latest_policy_hash(name).await?.ok_or_else(not_found)?,
        };
        if let Some(p) = self.programs.lock().ok().and_then(|m| m.get(&hash).cloned()) {
            return Ok(p);
        }
        let record = self.store.get_policy(name, Some(&hash)).await?.ok_or_else(not_found)?;
        let policy: civicflow_dsl::ir::Policy =
            serde_json::from_value(record.ir).map_err(|e| RuntimeError::Corrupt(format!("policy {name}: {e}")))?;
        let program = Arc::new(Program::new(policy, record.hash.clone()).map_err(RuntimeError::Corrupt)?);
        if let Ok(mut m) = self.programs.lock() {
            m.insert(record.hash, program.clone());
        }
        Ok(program)
    }

    fn ctx<'a>(program: &'a Program, calendar: &'a Calendar) -> Context<'a> {
        Context { program, calendar }
    }

    /// Starts an instance with a caller-chosen id.
    pub async fn start(
        &self,
        id: &str,
        policy: &str,
        hash: Option<&str>,
        actor: &Actor,
        params: BTreeMap<String, Value>,
        idem: Option<Idempotency>,
    ) -> Result<Outcome, RuntimeError> {
        let started = self.start_or_fail(id, policy, hash, actor, params, idem.as_ref()).await;
        self.or_replay(started, &actor.principal, idem.as_ref()).await
    }

    /// A command's result, or, when it did not commit and its key was used before, the answer
    /// given then (or [`RuntimeError::KeyReused`]). The key is looked up only when the command
    /// fails: a command that commits proves its key new, since the idempotency record is
    /// inserted in the same transaction (issue 10.4: one read less per request).
    async fn or_replay(
        &self,
        result: Result<Outcome, RuntimeError>,
        principal: &str,
        idem: Option<&Idempotency>,
    ) -> Result<Outcome, RuntimeError> {
        match result {
            Err(e) if idem.is_some() => Ok(self.replay_if_seen(principal, idem).await?.ok_or(e)?),
            other => other,
        }
    }

    /// [`Runtime::start`] without the replay of a key seen before (a commit under a taken key
    /// fails with `DuplicateKey`, which [`Runtime::or_replay`] answers).
    async fn start_or_fail(
        &self,
        id: &str,
        policy: &str,
        hash: Option<&str>,
        actor: &Actor,
        params: BTreeMap<String, Value>,
        idem: Option<&Idempotency>,
    ) -> Result<Outcome, RuntimeError> {
        let program = self.program(policy, hash).await?;
        let now = truncate_to_micros(self.clock.now());
        let command = Command::Start { actor: actor.clone(), params };
        let calendar = self.calendar();
        let ctx = Self::ctx(&program, &calendar);
        let (events, next) =
            core::decide_with_state(ctx, &State::new(), &command, now).map_err(RuntimeError::Refused)?;
        let mut commit = self.commit_for(id, ctx, &State::new(), 0, &events, &next, now, None, idem, actor)?;
        commit.counters.extend(self.cycle_member(&program, &next));
        let record = InstanceRecord {
            id: id.to_string(),
            policy_name: program.policy.name.clone(),
            policy_hash: program.hash.clone(),
            version: 0,
            status: commit.status.clone(),
            // Written over by the commit's own snapshot in the same transaction.
            snapshot: serde_json::Value::Null,
            snapshot_version: 0,
            created_at: now,
            updated_at: now,
        };
        let bytes = self.estimate(id, &next, &commit);
        let earliest = commit.new_timers.iter().map(|t| t.due_at).min();
        let mut cached = record.clone();
        // Issue 10.3: group-committed with the other starts and commands (one fsync for all).
        commit.create = Some(Box::new(record));
        match self.committer.commit(commit).await {
            Ok(stored) => {
                cached.version = stored.len() as u64;
                cached.snapshot_version = cached.version;
                self.cache.put(cached, next, bytes);
                self.timer_planned(earliest);
                Ok(outcome(id, stored))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Acts on a step of an instance.
    pub async fn act(
        &self,
        id: &str,
        actor: &Actor,
        node: &str,
        action: Action,
        comment: Option<String>,
        idem: Option<Idempotency>,
    ) -> Result<Outcome, RuntimeError> {
        self.act_on(id, None, actor, node, action, comment, idem).await
    }

    /// [`Runtime::act`] on an instance the caller has just loaded ([`Runtime::load`]) to read the
    /// request against its step: the first decision uses it instead of reading it again (a
    /// stale copy only costs a lost compare-and-set and a fresh load).
    #[allow(clippy::too_many_arguments, reason = "act's arguments and the loaded instance")]
    pub async fn act_loaded(
        &self,
        loaded: CommandCopy,
        actor: &Actor,
        node: &str,
        action: Action,
        comment: Option<String>,
        idem: Option<Idempotency>,
    ) -> Result<Outcome, RuntimeError> {
        let id = loaded.0.id.clone();
        self.act_on(&id, Some(loaded), actor, node, action, comment, idem).await
    }

    #[allow(clippy::too_many_arguments, reason = "act's arguments and the loaded instance")]
    async fn act_on(
        &self,
        id: &str,
        loaded: Option<CommandCopy>,
        actor: &Actor,
        node: &str,
        action: Action,
        comment: Option<String>,
        idem: Option<Idempotency>,
    ) -> Result<Outcome, RuntimeError> {
        let command = Command::Act { actor: actor.clone(), node: node.to_string(), action, comment };
        let acted = self.run(id, &command, actor, None, idem.as_ref(), loaded).await;
        self.or_replay(acted, &actor.principal, idem.as_ref()).await
    }

    /// 挂起 or 激活 (issue 11.3): suspends the instance, or resumes it with its open deadlines
    /// moved later by the time suspended.
    pub async fn suspend_or_resume(
        &self,
        id: &str,
        actor: &Actor,
        resume: bool,
        reason: &str,
        idem: Option<Idempotency>,
    ) -> Result<Outcome, RuntimeError> {
        let (who, why) = (actor.clone(), reason.to_string());
        let command = if resume {
            Command::Resume { actor: who, reason: why }
        } else {
            Command::Suspend { actor: who, reason: why }
        };
        let done = self.run(id, &command, actor, None, idem.as_ref(), None).await;
        self.or_replay(done, &actor.principal, idem.as_ref()).await
    }

    /// 更正 (issue 11.4): corrects start parameters of a running instance, with a reason.
    pub async fn correct(
        &self,
        id: &str,
        actor: &Actor,
        params: BTreeMap<String, Value>,
        reason: &str,
        idem: Option<Idempotency>,
    ) -> Result<Outcome, RuntimeError> {
        let command = Command::Correct { actor: actor.clone(), params, reason: reason.to_string() };
        let done = self.run(id, &command, actor, None, idem.as_ref(), None).await;
        self.or_replay(done, &actor.principal, idem.as_ref()).await
    }

    pub async fn cancel(&self, id: &str, actor: &Actor, reason: &str) -> Result<Outcome, RuntimeError> {
        let command = Command::Cancel { actor: actor.clone(), reason: reason.to_string() };
        self.run(id, &command, actor, None, None, None).await
    }

    /// Decides and commits, deciding again after a lost race.
    async fn run(
        &self,
        id: &str,
        command: &Command,
        actor: &Actor,
        fire: Option<(i64, i64)>,
        idem: Option<&Idempotency>,
        mut loaded: Option<CommandCopy>,
    ) -> Result<Outcome, RuntimeError> {
        // Timers race other nodes' timers and commands on the same instance; they are idempotent,
        // so they may try longer.
        let retries = if fire.is_some() { TIMER_RETRIES } else { RETRIES };
        for attempt in 0..retries {
            // `fresh`: read from the store just now, not a copy that may be stale.
            let (copy, fresh) = match loaded.take() {
                Some(copy) => (copy, false),
                None => self.command_copy(id).await?,
            };
            let (record, state) = (&copy.0, &copy.1);
            // Issue 11.5: a migration is decided with the version it moves the instance to.
            let hash = match command {
                Command::Migrate { map, .. } if record.policy_hash != map.from => {
                    return Err(RuntimeError::Refused(Refusal::MigrationRefused {
                        step: None,
                        why: format!("it runs on version {}, not on the one the plan moves from", record.policy_hash),
                    }))
                }
                Command::Migrate { map, .. } => map.to.as_str(),
                _ => record.policy_hash.as_str(),
            };
            let program = self.program(&record.policy_name, Some(hash)).await?;
            // A timer's events happen at its instant (R3.5: the breach is recorded when it
            // occurs), however late the service delivers it.
            let now = match command {
                Command::Fire { at, .. } => *at,
                _ => truncate_to_micros(self.clock.now()),
            };
            let mut facts = self.facts(id, &program, state, command).await?;
            let calendar = self.calendar();
            let ctx = Self::ctx(&program, &calendar);
            let (mut events, mut next) = match core::decide_with_facts(ctx, state, command, now, &facts) {
                Ok(decided) => decided,
                // A refusal decided on a copy that may be stale (another node committed since)
                // is decided again on the store's state before anyone is told.
                Err(_) if !fresh => {
                    self.cache.remove(id);
                    continue;
                }
                Err(refusal) => return Err(RuntimeError::Refused(refusal)),
            };
            let spawn = match self.spawn_next(id, &program, state, &events, &BTreeMap::new(), now).await {
                // R0.3: a next cycle that cannot start is recorded as refused, once, rather than
                // retried after every lease with nothing to show for it.
                Err(RuntimeError::Refused(r))
                    if matches!(command, Command::Fire { kind: TimerKind::NextCycle, .. }) =>
                {
                    facts.next_cycle_refused = Some((r.code().to_string(), r.to_string()));
                    (events, next) =
                        core::decide_with_facts(ctx, state, command, now, &facts).map_err(RuntimeError::Refused)?;
                    None
                }
                other => other?,
            };
            let mut commit =
                self.commit_for(id, ctx, state, record.snapshot_version, &events, &next, now, fire, idem, actor)?;
            commit.counters.extend(self.quota_counters(&program, state, &next, &facts));
            commit.released.extend(self.quota_released(&program, state, &next));
            commit.spawn = spawn;
            if let Command::Migrate { .. } = command {
                migrate::whole_commit(&mut commit, id, ctx, state, &next);
            }
            let policy_hash = commit.policy_hash.clone().unwrap_or_else(|| record.policy_hash.clone());
            let bytes = self.estimate(id, &next, &commit);
            let wrote_snapshot = commit.snapshot.is_some();
            let status = commit.status.clone();
            let earliest = commit.new_timers.iter().map(|t| t.due_at).min();
            match self.committer.commit(commit).await {
                Ok(stored) => {
                    let version = record.version + stored.len() as u64;
                    let updated_at = stored.last().map_or(record.updated_at, |e| e.at);
                    let cached = InstanceRecord {
                        version,
                        status,
                        updated_at,
                        snapshot: serde_json::Value::Null,
                        snapshot_version: if wrote_snapshot { version } else { record.snapshot_version },
                        policy_hash,
                        ..record.clone()
                    };
                    self.cache.put(cached, next, bytes);
                    self.timer_planned(earliest);
                    return Ok(outcome(id, stored).with_version(version));
                }
                // Lost a race for the instance or for a quota's last place: decide again on
                // what the winner committed.
                Err(StoreError::Conflict { .. } | StoreError::CounterFull { .. }) => {
                    self.cache.remove(id);
                    // Lost a race for the instance: let the winner's commit land, decide again.
                    tokio::time::sleep(Duration::from_millis((attempt as u64 + 1).min(20))).await;
                    continue;
                }
                Err(e) => {
                    // Whatever failed (a key already taken is answered by `or_replay`), the next
                    // command starts from the store.
                    self.cache.remove(id);
                    return Err(e.into());
                }
            }
        }
        Err(RuntimeError::Busy)
    }

    async fn replay_if_seen(
        &self,
        principal: &str,
        idem: Option<&Idempotency>,
    ) -> Result<Option<Outcome>, RuntimeError> {
        let Some(idem) = idem else { return Ok(None) };
        match self.store.get_idempotency(principal, &idem.key).await? {
            None => Ok(None),
            Some(r) if r.request_hash == idem.request_hash => {
                let mut o: Outcome = serde_json::from_value(r.response)
                    .map_err(|e| RuntimeError::Corrupt(format!("idempotent response: {e}")))?;
                o.replayed = true;
                Ok(Some(o))
            }
            Some(_) => Err(RuntimeError::KeyReused { key: idem.key.clone() }),
        }
    }

    /// The cache's estimate of `next`'s size: from the snapshot's text when the commit writes
    /// one, else the copy it was decided on grown by its events' text (an over-estimate).
    fn estimate(&self, id: &str, next: &State, commit: &Commit) -> usize {
        let added: usize = commit.events.iter().map(|e| cache::text_bytes(e.payload.value())).sum();
        match (&commit.snapshot, self.cache.bytes_of(id)) {
            (Some(text), _) => cache::estimated_bytes(next.nodes.len(), text.len()),
            (None, Some(before)) => before + added,
            (None, None) => cache::estimated_bytes(next.nodes.len(), added),
        }
    }

    /// The commit for `events` decided on `state` (leading to `next`): events with their actor, the new snapshot,
    /// timer changes for the nodes whose timers changed, the idempotency record.
    #[expect(clippy::too_many_arguments, reason = "one internal helper gathering a commit's parts")]
    fn commit_for(
        &self,
        id: &str,
        ctx: Context,
        state: &State,
        snapshot_version: u64,
        events: &[Event],
        next: &State,
        now: DateTime<Utc>,
        fire: Option<(i64, i64)>,
        idem: Option<&Idempotency>,
        actor: &Actor,
    ) -> Result<Commit, RuntimeError> {
        // Only the nodes the command changed are looked at (issue 10.2).
        let (changed, timers) = core::timer_changes(ctx, state, next);
        let (open_step_nodes, opened) = core::open_step_changes(ctx.program, state, next);
        let new_timers = timers
            .into_iter()
            .map(|t| NewTimer {
                instance: id.to_string(),
                node: t.node.clone(),
                kind: timer_kind_word(t.kind).to_string(),
                due_at: t.at,
                payload: serde_json::json!({ "kind": t.kind, "at": t.at }),
            })
            .collect();
        let system = fire.is_some();
        let new_events = events
            .iter()
            .map(|e| {
                Ok(NewEvent {
                    at: now,
                    actor: if system { "timer".to_string() } else { actor.principal.clone() },
                    role: if system { None } else { Some(actor.role.clone()) },
                    kind: e.kind().to_string(),
                    payload: serde_json::to_value(e).map_err(|x| RuntimeError::Corrupt(x.to_string()))?.into(),
                })
            })
            .collect::<Result<Vec<_>, RuntimeError>>()?;
        let version = state.version;
        let seqs: Vec<u64> = (version + 1..=version + events.len() as u64).collect();
        let response = Outcome {
            instance: id.to_string(),
            version: version + events.len() as u64,
            seqs,
            replayed: false,
            recorded: Vec::new(),
        };
        let idempotency = idem.map(|i| IdempotencyRecord {
            principal: actor.principal.clone(),
            key: i.key.clone(),
            request_hash: i.request_hash.clone(),
            response: serde_json::to_value(&response).unwrap_or_default(),
        });
        let commit = Commit {
            instance: id.to_string(),
            expected_version: version,
            events: new_events,
            status: next.status.word().to_string(),
            // Issue 10.1: the snapshot is a cache, written every few events (and at the first
            // and the last); the events are the write.
            snapshot: if snapshot_due(snapshot_version, next.version, next.status == core::Status::Running) {
                Some(serde_json::to_string(next).map_err(|e| RuntimeError::Corrupt(e.to_string()))?)
            } else {
                None
            },
            new_timers,
            cancel_timers_for_nodes: changed,
            fire,
            idempotency,
            counters: Vec::new(),
            released: Vec::new(),
            spawn: None,
            create: None,
            open_step_nodes,
            open_step_rows: open_steps::open_step_rows(opened),
            policy_hash: None,
            late: late_steps(ctx.program, next, events, now),
        };
        Ok(commit)
    }

    /// The instance as a command decides on it: from the instance cache when this runtime holds
    /// it (a stale copy only costs a lost compare-and-set and a fresh load), else from the store
    /// (and then kept). Reads for people use [`Runtime::load`], which always reads the store.
    /// The record's snapshot is `Null`: the state is the second part.
    pub async fn load_for_command(&self, id: &str) -> Result<CommandCopy, RuntimeError> {
        Ok(self.command_copy(id).await?.0)
    }

    /// [`Runtime::load_for_command`], and whether the copy was read from the store just now.
    /// Shared with the cache, not cloned: a command only reads it (`decide` works on its own
    /// copy).
    async fn command_copy(&self, id: &str) -> Result<(CommandCopy, bool), RuntimeError> {
        if let Some(cached) = self.cache.get(id) {
            return Ok((cached, false));
        }
        // Issue 10: the state parsed from the stored text, no `serde_json::Value` on the way.
        let loaded = self.store.load_states(&[id.to_string()]).await?.pop();
        let loaded = loaded.ok_or_else(|| RuntimeError::NotFound { what: "instance", id: id.to_string() })?;
        Ok((self.cache.put_loaded(loaded), true))
    }

    /// The instance's record and current state (from its snapshot).
    pub async fn load(&self, id: &str) -> Result<(InstanceRecord, State), RuntimeError> {
        let record = self
            .store
            .load_instance(id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound { what: "instance", id: id.to_string() })?;
        let state: State = State::deserialize(&record.snapshot)
            .map_err(|e| RuntimeError::Corrupt(format!("snapshot of {id}: {e}")))?;
        Ok((record, state))
    }

    /// The state at a past instant, by replaying the events up to it.
    pub async fn state_as_of(&self, id: &str, at: DateTime<Utc>) -> Result<State, RuntimeError> {
        let events = self.store.events_until(id, at).await?;
        replay_stored(&events)
    }
}

fn outcome(id: &str, stored: Vec<StoredEvent>) -> Outcome {
    Outcome {
        instance: id.to_string(),
        version: stored.last().map_or(0, |e| e.seq),
        seqs: stored.iter().map(|e| e.seq).collect(),
        replayed: false,
        recorded: stored,
    }
}

impl Outcome {
    fn with_version(mut self, v: u64) -> Self {
        if self.seqs.is_empty() {
            self.version = v;
        }
        self
    }
}

/// Replays stored events into a state.
pub fn replay_stored(events: &[StoredEvent]) -> Result<State, RuntimeError> {
    let mut state = State::new();
    for e in events {
        let event: Event = <Event as serde::Deserialize>::deserialize(&*e.payload)
            .map_err(|x| RuntimeError::Corrupt(format!("event {} of {}: {x}", e.seq, e.instance)))?;
        core::apply(&mut state, &event, e.at);
    }
    Ok(state)
}

pub fn timer_kind_word(k: TimerKind) -> &'static str {
    match k {
        TimerKind::Due => "due",
        TimerKind::Reminder => "reminder",
        TimerKind::MinDurationEnds => "min_duration_ends",
        TimerKind::WindowCloses => "window_closes",
        TimerKind::NextCycle => "next_cycle",
    }
}
