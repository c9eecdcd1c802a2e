//! What relates an instance to others, as the runtime gathers and commits it (R0.3 cycles,
//! R3.6 prerequisites, R3.7 quotas): the facts `decide` is given, the counters a commit claims
//! and releases, the next cycle spawned in the same commit.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use civicflow_dsl::value::Value;

use super::{outcome, Idempotency, Outcome, Runtime, RuntimeError, RETRIES};
use crate::audit::truncate_to_micros;
use crate::core::cycles::{self, CycleLink, Facts, Found, QuotaCount};
use crate::core::{self, Actor, Command, Event, Program, State};
use crate::store::{CounterClaim, InstanceFilter, InstanceRecord, Spawn, StoreError};

impl Runtime {
    /// What `command` needs to know about other instances (R3.6, R3.7), from the store.
    pub(super) async fn facts(
        &self,
        id: &str,
        program: &Program,
        state: &State,
        command: &Command,
    ) -> Result<Facts, RuntimeError> {
        let calendar = self.calendar();
        let ctx = Self::ctx(program, &calendar);
        let mut facts = Facts { instance: Some(id.to_string()), ..Facts::default() };
        let needs = cycles::needs(ctx, state, command);
        if let (false, Some(period)) = (needs.quotas.is_empty(), cycles::period(ctx, state)) {
            let name = &program.policy.name;
            let base = self.store.counter(&format!("{name}/{period}/instances")).await?;
            for q in needs.quotas {
                let used = self.store.counter(&format!("{name}/{period}/{q}")).await?;
                facts.quotas.insert(q, QuotaCount { base, used });
            }
        }
        for p in needs.prerequisites {
            let found = self.find_latest(&p.policy, &p.param, &p.value).await?;
            facts.prerequisites.insert(p.key, found);
        }
        Ok(facts)
    }

    /// The latest instance of `policy` whose parameter `param` is `value` (R3.6): finished ones
    /// (completed or ended by a rejection) before running ones.
    pub(super) async fn find_latest(&self, policy: &str, param: &str, value: &Value) -> Result<Found, RuntimeError> {
        let mut finished = None;
        let mut running = false;
        let mut page = 1;
        loop {
            let filter = InstanceFilter {
                policy: Some(policy.to_string()),
                page,
                page_size: crate::store::MAX_PAGE_SIZE,
                ..InstanceFilter::default()
            };
            let listed = self.store.list_instances(&filter).await?;
            for r in &listed.items {
                let params: BTreeMap<String, Value> =
                    r.snapshot.get("params").cloned().and_then(|p| serde_json::from_value(p).ok()).unwrap_or_default();
                if params.get(param) != Some(value) {
                    continue;
                }
                match r.status.as_str() {
                    "completed" => finished = Some(Found::Completed),
                    "rejected" => finished = Some(Found::Negative),
                    "running" => running = true,
                    _ => {}
                }
            }
            if u64::from(page) * u64::from(crate::store::MAX_PAGE_SIZE) >= listed.total {
                break;
            }
            page += 1;
        }
        Ok(finished.unwrap_or(if running { Found::Running } else { Found::Nothing }))
    }

    /// R3.7: the instance counts in its cycle's base (policies with quotas only).
    pub(super) fn cycle_member(&self, program: &Program, state: &State) -> Option<CounterClaim> {
        if program.policy.quotas.is_empty() {
            return None;
        }
        let calendar = self.calendar();
        let period = cycles::period(Self::ctx(program, &calendar), state)?;
        Some(CounterClaim { key: format!("{}/{period}/instances", program.policy.name), cap: None })
    }

    /// R3.7: the quota places the change gives back (a return reset the rating).
    pub(super) fn quota_released(&self, program: &Program, before: &State, after: &State) -> Vec<String> {
        let calendar = self.calendar();
        let Some(period) = cycles::period(Self::ctx(program, &calendar), before) else { return Vec::new() };
        cycles::quota_releases(&program.policy, before, after)
            .into_iter()
            .map(|q| format!("{}/{period}/{}", program.policy.name, q.id))
            .collect()
    }

    /// R3.7: the quota places the change takes, each under the cap the core decided with.
    pub(super) fn quota_counters(
        &self,
        program: &Program,
        before: &State,
        after: &State,
        facts: &Facts,
    ) -> Vec<CounterClaim> {
        let calendar = self.calendar();
        let Some(period) = cycles::period(Self::ctx(program, &calendar), before) else { return Vec::new() };
        cycles::quota_claims(&program.policy, before, after)
            .into_iter()
            .filter_map(|q| {
                let count = facts.quotas.get(&q.id)?;
                Some(CounterClaim {
                    key: format!("{}/{period}/{}", program.policy.name, q.id),
                    cap: Some(cycles::cap(q, count.base)),
                })
            })
            .collect()
    }

    /// R0.3: when `events` open the next cycle, the new instance to create in the same commit:
    /// its parameters carried over (and `given`, for a cycle that needs fresh ones), linked to
    /// this one, started at its due instant (or now, when a person starts it).
    pub(super) async fn spawn_next(
        &self,
        id: &str,
        program: &Program,
        state: &State,
        events: &[Event],
        given: &BTreeMap<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Option<Box<Spawn>>, RuntimeError> {
        let Some((number, instance, due_at)) = events.iter().find_map(|e| match e {
            Event::NextCycleOpened { cycle, instance, due_at } => Some((*cycle, instance.clone(), *due_at)),
            _ => None,
        }) else {
            return Ok(None);
        };
        let calendar = self.calendar();
        let ctx = Self::ctx(program, &calendar);
        // The recurrence that fell due: the earliest, as the timer was set.
        let cycle = match cycles::next_due(ctx, state) {
            Some((c, _)) => c,
            None => cycles::due_cycle(ctx, state).ok_or_else(|| {
                RuntimeError::Corrupt(format!("{id}: the next cycle is opened but no recurrence is due"))
            })?,
        };
        let params = cycles::next_params(ctx, state, &cycle, due_at, given).map_err(RuntimeError::Refused)?;
        let start_at = if given.is_empty() { due_at } else { now };
        let system = Actor { principal: "timer".into(), office: String::new(), role: String::new() };
        let facts = Facts {
            instance: Some(instance.clone()),
            link: Some(CycleLink { number, previous: id.to_string() }),
            ..Facts::default()
        };
        let command = Command::Start { actor: system.clone(), params };
        let (new_events, next) =
            core::decide_with_facts(ctx, &State::new(), &command, start_at, &facts).map_err(RuntimeError::Refused)?;
        let mut first =
            self.commit_for(&instance, ctx, &State::new(), 0, &new_events, &next, start_at, None, None, &system)?;
        first.counters.extend(self.cycle_member(program, &next));
        let record = InstanceRecord {
            id: instance.clone(),
            policy_name: program.policy.name.clone(),
            policy_hash: program.hash.clone(),
            version: 0,
            status: first.status.clone(),
            // Written over by its first commit's snapshot in the same transaction.
            snapshot: serde_json::Value::Null,
            snapshot_version: 0,
            created_at: start_at,
            updated_at: start_at,
        };
        Ok(Some(Box::new(Spawn { instance: record, first })))
    }

    /// R0.3: the task "start the next cycle" done by the role the policy names, with the fresh
    /// parameters: the new instance is created in the same commit that records it on this one.
    pub async fn start_next_cycle(
        &self,
        id: &str,
        actor: &Actor,
        given: BTreeMap<String, Value>,
        idem: Option<Idempotency>,
    ) -> Result<Outcome, RuntimeError> {
        if let Some(done) = self.replay_if_seen(&actor.principal, idem.as_ref()).await? {
            return Ok(done);
        }
        for attempt in 0..RETRIES {
            let (record, state) = self.load(id).await?;
            let program = self.program(&record.policy_name, Some(&record.policy_hash)).await?;
            let now = truncate_to_micros(self.clock.now());
            let calendar = self.calendar();
            let ctx = Self::ctx(&program, &calendar);
            let (events, next) = cycles::start_next(ctx, &state, actor, now).map_err(RuntimeError::Refused)?;
            let mut commit = self.commit_for(
                id,
                ctx,
                &state,
                record.snapshot_version,
                &events,
                &next,
                now,
                None,
                idem.as_ref(),
                actor,
            )?;
            commit.spawn = self.spawn_next(id, &program, &state, &events, &given, now).await?;
            match self.committer.commit(commit).await {
                Ok(stored) => {
                    let version = record.version + stored.len() as u64;
                    return Ok(outcome(id, stored).with_version(version));
                }
                Err(StoreError::Conflict { .. }) => {
                    tokio::time::sleep(Duration::from_millis((attempt as u64 + 1).min(20))).await;
                }
                Err(StoreError::DuplicateKey { .. }) => {
                    return self.replay_if_seen(&actor.principal, idem.as_ref()).await?.ok_or(RuntimeError::Busy)
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(RuntimeError::Busy)
    }
}
