//! Migration plans (issue 11.5): computed, stored, reviewed, then applied by id.
//!
//! A plan names a policy, the version its running instances move from and the one they move to,
//! and the renames between them. Planning decides, for every running instance on the old version,
//! the command that moves it ([`core::Command::Migrate`]) without committing anything — the core
//! is pure — and records how it maps or why it is refused. Applying the plan moves each instance
//! the plan accepted in a commit of its own (atomic per instance, its version switched in the
//! same transaction), decided again on the instance as it is then: one that moved on since and
//! no longer fits is refused and named, and nothing of it changes. An application that stops
//! half way is resumed by applying the plan again: the instances already moved are counted as
//! such. Instances not in the plan — finished ones, or started after it — keep their version.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::{self, Actor, Command, Context, Event, MigrationMap, Refusal, State};
use crate::store::{Commit, InstanceFilter, InstanceRecord, MigrationPlanRecord, NewTimer, MAX_PAGE_SIZE};

use super::{timer_kind_word, Runtime, RuntimeError};

/// A migration plan, as reviewed and as applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MigrationPlan {
    /// `mig-` and 16 hex digits.
    pub id: String,
    pub policy: String,
    /// The versions (hashes) and their labels.
    pub from: String,
    pub from_label: String,
    pub to: String,
    pub to_label: String,
    /// The renames as given (old id → new id).
    pub renames: BTreeMap<String, String>,
    /// What the plan maps between the versions, instances aside.
    pub map: MigrationMap,
    /// Every instance running on `from` when the plan was made, in id order.
    pub instances: Vec<PlannedInstance>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// One instance in a plan: the version it was planned at, and how it maps or why it cannot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedInstance {
    pub id: String,
    pub version: u64,
    #[serde(flatten)]
    pub outcome: PlannedOutcome,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PlannedOutcome {
    /// It moves: its steps renamed (old key → new key), removed and added, and the steps that
    /// open at once in the new version.
    Migrates { renamed: Vec<(String, String)>, removed: Vec<String>, added: Vec<String>, opens: Vec<String> },
    /// It cannot: the refusal's code and words, naming the step.
    Refused { code: String, reason: String },
}

impl MigrationPlan {
    /// How many instances the plan moves and how many it refuses.
    pub fn counts(&self) -> (usize, usize) {
        let moves = self.instances.iter().filter(|i| matches!(i.outcome, PlannedOutcome::Migrates { .. })).count();
        (moves, self.instances.len() - moves)
    }

    /// The plan as a reviewer reads it.
    pub fn text(&self) -> String {
        let mut out = format!(
            "migration plan {}\npolicy {}: {} ({}) → {} ({})\n",
            self.id,
            self.policy,
            self.from_label,
            short(&self.from),
            self.to_label,
            short(&self.to)
        );
        let m = &self.map;
        for (old, new) in &m.renamed {
            out.push_str(&format!("  renamed  {old} → {new}\n"));
        }
        for id in &m.removed {
            out.push_str(&format!("  removed  {id}\n"));
        }
        for id in &m.added {
            out.push_str(&format!("  added    {id}\n"));
        }
        for (id, change) in &m.changed_kind {
            out.push_str(&format!("  kind     {id}: {change}\n"));
        }
        let (moves, refused) = self.counts();
        out.push_str(&format!("{} running instance(s): {moves} move, {refused} refused\n", self.instances.len()));
        for i in &self.instances {
            match &i.outcome {
                PlannedOutcome::Migrates { opens, .. } if opens.is_empty() => {
                    out.push_str(&format!("  ok       {} (v{})\n", i.id, i.version));
                }
                PlannedOutcome::Migrates { opens, .. } => {
                    out.push_str(&format!("  ok       {} (v{}), opens {}\n", i.id, i.version, opens.join(", ")));
                }
                PlannedOutcome::Refused { code, reason } => {
                    out.push_str(&format!("  REFUSED  {} (v{}): {code} {reason}\n", i.id, i.version));
                }
            }
        }
        out
    }
}

/// What applying a plan did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrationReport {
    pub plan: String,
    /// Moved by this application.
    pub migrated: Vec<String>,
    /// On the new version already (an earlier application of the plan moved them).
    pub already: Vec<String>,
    /// Refused: by the plan, or on the instance as it is now (the code and words).
    pub refused: Vec<RefusedInstance>,
    /// No longer running on the old version (finished, cancelled, or moved by another plan).
    pub gone: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefusedInstance {
    pub id: String,
    pub code: String,
    pub reason: String,
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

impl Runtime {
    /// A published version of `policy` named by its hash, a prefix of it (8 or more digits) or
    /// its label (the latest with that label).
    pub async fn policy_version(&self, policy: &str, version: &str) -> Result<(String, String), RuntimeError> {
        let versions = self.store.policy_versions(policy).await?;
        versions
            .iter()
            .rev()
            .find(|p| p.hash == version || (version.len() >= 8 && p.hash.starts_with(version)))
            .or_else(|| versions.iter().rev().find(|p| p.version_label == version))
            .map(|p| (p.hash.clone(), p.version_label.clone()))
            .ok_or_else(|| RuntimeError::NotFound { what: "policy version", id: format!("{policy}@{version}") })
    }

    /// Computes and stores a plan moving the running instances of `policy` from version `from`
    /// to version `to` (hashes, prefixes or labels) with `renames`; `progress` is told
    /// `(instances planned, in all)` as it goes. Nothing of any instance changes.
    pub async fn plan_migration(
        &self,
        policy: &str,
        from: &str,
        to: &str,
        renames: BTreeMap<String, String>,
        by: &str,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<MigrationPlan, RuntimeError> {
        let (from, from_label) = self.policy_version(policy, from).await?;
        let (to, to_label) = self.policy_version(policy, to).await?;
        if from == to {
            return Err(RuntimeError::Refused(Refusal::MigrationRefused {
                step: None,
                why: format!("the two versions are the same ({})", short(&from)),
            }));
        }
        let (old, new) = (self.program(policy, Some(&from)).await?, self.program(policy, Some(&to)).await?);
        let created_at = crate::audit::truncate_to_micros(self.clock.now());
        let id = plan_id(policy, &from, &to, &renames, created_at, by);
        let map = core::migration_map(&id, &old, &new, &renames)
            .map_err(|why| RuntimeError::Refused(Refusal::MigrationRefused { step: None, why }))?;
        let records = self.running_on(policy, &from).await?;
        let total = records.len() as u64;
        let calendar = self.calendar();
        let ctx = Context { program: &new, calendar: &calendar };
        let actor = planner(by);
        let mut instances = Vec::with_capacity(records.len());
        for (done, record) in records.into_iter().enumerate() {
            // The listing's records hold each state as of its version already.
            let state = State::deserialize(&record.snapshot)
                .map_err(|e| RuntimeError::Corrupt(format!("snapshot of {}: {e}", record.id)))?;
            let command = Command::Migrate { actor: actor.clone(), map: map.clone() };
            let outcome = match core::decide(ctx, &state, &command, created_at) {
                Ok(events) => planned(&events),
                Err(r) => PlannedOutcome::Refused { code: r.code().to_string(), reason: r.to_string() },
            };
            instances.push(PlannedInstance { id: record.id, version: record.version, outcome });
            progress(done as u64 + 1, total);
        }
        let plan = MigrationPlan {
            id,
            policy: policy.to_string(),
            from,
            from_label,
            to,
            to_label,
            renames,
            map,
            instances,
            created_at,
            created_by: by.to_string(),
        };
        let body = serde_json::to_string(&plan).map_err(|e| RuntimeError::Corrupt(e.to_string()))?;
        self.store
            .put_migration_plan(MigrationPlanRecord {
                id: plan.id.clone(),
                policy: plan.policy.clone(),
                from_hash: plan.from.clone(),
                to_hash: plan.to.clone(),
                body,
                created_at,
                created_by: by.to_string(),
            })
            .await?;
        Ok(plan)
    }

    /// The stored plan with this id.
    pub async fn migration_plan(&self, id: &str) -> Result<MigrationPlan, RuntimeError> {
        let record = self
            .store
            .migration_plan(id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound { what: "migration plan", id: id.to_string() })?;
        serde_json::from_str(&record.body).map_err(|e| RuntimeError::Corrupt(format!("migration plan {id}: {e}")))
    }

    /// Applies the plan `id`: each instance it moves, in a commit of its own, decided again on the
    /// instance as it is now; `progress` is told `(instances done, in the plan)`. Resumable: an
    /// instance moved by an earlier application is reported as `already`.
    pub async fn apply_migration(
        &self,
        id: &str,
        by: &str,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<MigrationReport, RuntimeError> {
        let plan = self.migration_plan(id).await?;
        let actor = planner(by);
        let mut report = MigrationReport { plan: plan.id.clone(), ..MigrationReport::default() };
        let total = plan.instances.len() as u64;
        for (done, planned) in plan.instances.iter().enumerate() {
            progress(done as u64, total);
            if let PlannedOutcome::Refused { code, reason } = &planned.outcome {
                report.refused.push(RefusedInstance {
                    id: planned.id.clone(),
                    code: code.clone(),
                    reason: reason.clone(),
                });
                continue;
            }
            let record = match self.store.load_instance(&planned.id).await? {
                Some(r) => r,
                None => {
                    report.gone.push(planned.id.clone());
                    continue;
                }
            };
            if record.policy_hash == plan.to {
                report.already.push(planned.id.clone());
                continue;
            }
            if record.policy_hash != plan.from || record.status != "running" {
                report.gone.push(planned.id.clone());
                continue;
            }
            let command = Command::Migrate { actor: actor.clone(), map: plan.map.clone() };
            match self.run(&planned.id, &command, &actor, None, None, None).await {
                Ok(_) => report.migrated.push(planned.id.clone()),
                Err(RuntimeError::Refused(r)) => report.refused.push(RefusedInstance {
                    id: planned.id.clone(),
                    code: r.code().to_string(),
                    reason: r.to_string(),
                }),
                Err(e) => return Err(e),
            }
        }
        progress(total, total);
        Ok(report)
    }

    /// The running instances of `policy` on version `hash`, in id order.
    async fn running_on(&self, policy: &str, hash: &str) -> Result<Vec<InstanceRecord>, RuntimeError> {
        let mut filter = InstanceFilter {
            policy: Some(policy.to_string()),
            status: Some("running".into()),
            page_size: MAX_PAGE_SIZE,
            ..InstanceFilter::default()
        };
        let mut out = Vec::new();
        loop {
            let page = self.store.list_instances(&filter).await?;
            let full = page.items.len() == MAX_PAGE_SIZE as usize;
            out.extend(page.items.into_iter().filter(|r| r.policy_hash == hash));
            if !full {
                break;
            }
            filter.page += 1;
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

/// Who plans and applies: the principal, acting for the administration.
fn planner(by: &str) -> Actor {
    Actor { principal: by.to_string(), office: String::new(), role: "admin".into() }
}

fn plan_id(
    policy: &str,
    from: &str,
    to: &str,
    renames: &BTreeMap<String, String>,
    at: DateTime<Utc>,
    by: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [policy, from, to, by, &at.to_rfc3339()] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for (old, new) in renames {
        h.update(old.as_bytes());
        h.update([0]);
        h.update(new.as_bytes());
        h.update([0]);
    }
    format!("mig-{}", &hex::encode(h.finalize())[..16])
}

/// How an instance maps, from the events its migration would record.
fn planned(events: &[Event]) -> PlannedOutcome {
    let mut out = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for e in events {
        match e {
            Event::Migrated { renamed, removed, added, .. } => {
                out.0 = renamed.iter().map(|(old, new, _)| (old.clone(), new.clone())).collect();
                out.1 = removed.clone();
                out.2 = added.clone();
            }
            Event::Opened { node, .. } => out.3.push(node.clone()),
            _ => {}
        }
    }
    PlannedOutcome::Migrates { renamed: out.0, removed: out.1, added: out.2, opens: out.3 }
}

/// A migration's commit carries every node's timers and open-step rows anew: the new version may
/// time or list a node whose state the migration did not change (a reminder, a role).
pub(super) fn whole_commit(commit: &mut Commit, id: &str, ctx: Context, before: &State, after: &State) {
    let whole = core::whole_changes(ctx, before, after);
    commit.cancel_timers_for_nodes = whole.nodes.clone();
    commit.new_timers = whole
        .timers
        .into_iter()
        .map(|t| NewTimer {
            instance: id.to_string(),
            node: t.node.clone(),
            kind: timer_kind_word(t.kind).to_string(),
            due_at: t.at,
            payload: serde_json::json!({ "kind": t.kind, "at": t.at }),
        })
        .collect();
    commit.open_step_nodes = whole.nodes;
    commit.open_step_rows = super::open_steps::open_step_rows(whole.open_steps);
    commit.policy_hash = Some(ctx.program.hash.clone());
}
