//! Moving a running instance to a new version of its policy (issue 11.5). The difference
//! between the two versions is computed once, from the two compiled programs and the renames a
//! plan gives ([`migration_map`]): each node of the old version is kept (same id), renamed, or
//! removed; each node of the new one not matched is added. The command that moves one instance
//! ([`Command::Migrate`], decided with the new version) checks it against the instance's state,
//! so that nothing recorded is lost or silently undone:
//!
//! - a removed step must never have been acted on (waiting, skipped, or open with no act): an
//!   approval, a form, a vote is never dropped;
//! - a step whose kind changes must not have been acted on;
//! - an added step must come after the current position: what follows it in the new version
//!   must still be waiting (else it would run after what it should precede), and it may not be
//!   added into a phase that is done;
//! - an open step keeps its window: the new version's window must hold now, and a done step's
//!   window its completion; the roles that acted on an open step must still act on it;
//! - a parameter the new version adds needs a default.
//!
//! One `migrated` event records the versions, the plan, what was renamed, removed and added, and
//! the values computed with the new version; the steps added that are ready open at once.

use std::collections::{BTreeMap, BTreeSet};

use civicflow_dsl::eval;
use civicflow_dsl::ir::NodeKind;
use serde::{Deserialize, Serialize};

use super::open::Window;
use super::{amounts, eval_refusal, Decision, Event, NodeStatus, Program, Refusal};

/// What a plan maps between two versions of a policy, state aside.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationMap {
    /// The plan's id.
    pub plan: String,
    /// The versions' hashes.
    pub from: String,
    pub to: String,
    /// Old id → new id: the plan's renames and, under a renamed phase or call, its children.
    pub renamed: BTreeMap<String, String>,
    /// Ids of the old version with no counterpart in the new one.
    pub removed: Vec<String>,
    /// Ids of the new version with no counterpart in the old one.
    pub added: Vec<String>,
    /// New id → how its kind changes (`approval → task`), for nodes kept or renamed.
    pub changed_kind: BTreeMap<String, String>,
}

/// The map from `from` to `to` with `renames` (old id → new id), or why the renames do not fit
/// the two versions.
pub fn migration_map(
    plan: &str,
    from: &Program,
    to: &Program,
    renames: &BTreeMap<String, String>,
) -> Result<MigrationMap, String> {
    for (old, new) in renames {
        if from.node(old).is_none() {
            return Err(format!("`{old}` is not a step of the version migrated from ({})", short(&from.hash)));
        }
        if to.node(new).is_none() {
            return Err(format!("`{new}` is not a step of the version migrated to ({})", short(&to.hash)));
        }
        if from.node(new).is_some() && !renames.contains_key(new) {
            return Err(format!(
                "`{old}` cannot be renamed `{new}`: the version migrated from has a `{new}` too (rename it as well)"
            ));
        }
    }
    let mut renamed = renames.clone();
    for n in &from.policy.nodes {
        if renamed.contains_key(&n.id) || to.node(&n.id).is_some() {
            continue;
        }
        // Under a renamed phase or call, a child keeps its own name.
        let under = renames
            .iter()
            .find_map(|(old, new)| n.id.strip_prefix(&format!("{old}/")).map(|rest| format!("{new}/{rest}")));
        if let Some(new) = under.filter(|new| to.node(new).is_some()) {
            renamed.insert(n.id.clone(), new);
        }
    }
    let matched: BTreeSet<&str> = renamed.values().map(String::as_str).collect();
    let mut removed = Vec::new();
    let mut changed_kind = BTreeMap::new();
    for n in &from.policy.nodes {
        let new_id = renamed.get(&n.id).unwrap_or(&n.id);
        match to.node(new_id) {
            Some(m) if renamed.contains_key(&n.id) || !matched.contains(n.id.as_str()) => {
                if m.kind != n.kind {
                    changed_kind.insert(m.id.clone(), format!("{} → {}", kind_name(n.kind), kind_name(m.kind)));
                }
            }
            _ => removed.push(n.id.clone()),
        }
    }
    let added = to
        .policy
        .nodes
        .iter()
        .filter(|m| !matched.contains(m.id.as_str()) && (from.node(&m.id).is_none() || renamed.contains_key(&m.id)))
        .map(|m| m.id.clone())
        .collect();
    Ok(MigrationMap {
        plan: plan.to_string(),
        from: from.hash.clone(),
        to: to.hash.clone(),
        renamed,
        removed,
        added,
        changed_kind,
    })
}

fn kind_name(k: NodeKind) -> &'static str {
    match k {
        NodeKind::Phase => "phase",
        NodeKind::Call => "call",
        NodeKind::Step(s) => super::kind_word(s),
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

impl Decision<'_> {
    pub(super) fn migrate(&mut self, map: &MigrationMap) -> Result<(), Refusal> {
        self.running()?;
        let refuse =
            |step: Option<&str>, why: String| Refusal::MigrationRefused { step: step.map(str::to_string), why };
        if self.ctx.program.hash != map.to {
            return Err(refuse(
                None,
                format!(
                    "the command was decided with version {}, not {}",
                    short(&self.ctx.program.hash),
                    short(&map.to)
                ),
            ));
        }
        let to = self.ctx.program;
        let mut renamed = Vec::new();
        let mut removed = Vec::new();
        for (key, n) in self.state.nodes.iter() {
            if map.removed.contains(&n.def) {
                let acted = !n.acts.is_empty() || n.form.is_some() || n.vote.is_some();
                let why = match n.status {
                    NodeStatus::Done => Some(format!(
                        "it is {}: the new version has no such step, and its record would be lost",
                        status_word(n)
                    )),
                    NodeStatus::Open if acted => Some(
                        "it has been acted on: the new version has no such step, and the acts on it would be lost"
                            .into(),
                    ),
                    _ => None,
                };
                if let Some(why) = why {
                    return Err(refuse(Some(key), why));
                }
                removed.push(key.clone());
                continue;
            }
            let new_def = map.renamed.get(&n.def).unwrap_or(&n.def);
            if let Some(change) = map.changed_kind.get(new_def) {
                if n.status == NodeStatus::Done || !n.acts.is_empty() || n.form.is_some() || n.vote.is_some() {
                    return Err(refuse(Some(key), format!("its kind changes ({change}) and it has been acted on")));
                }
            }
            if new_def != &n.def {
                let new_key = match key.strip_prefix(n.def.as_str()) {
                    Some(rest) => format!("{new_def}{rest}"),
                    None => key.clone(),
                };
                renamed.push((key.clone(), new_key, new_def.clone()));
            }
        }
        // A parameter the new version adds takes its default.
        let mut params = BTreeMap::new();
        for p in &to.policy.params {
            if p.id.contains('/') || self.state.params.contains_key(&p.id) {
                continue;
            }
            match &p.default {
                Some(v) => {
                    params.insert(p.id.clone(), v.clone());
                }
                None => {
                    return Err(refuse(
                        None,
                        format!("the new version's parameter `{}` has no value here and no default", p.id),
                    ))
                }
            }
        }
        let mut all = self.state.params.clone();
        all.extend(params.clone());
        let values = eval::derived_values(&to.policy, &all).map_err(eval_refusal)?;
        amounts::check_amounts(&to.policy, &all, &values)?;
        let added = map.added.clone();
        self.emit(Event::Migrated {
            from: map.from.clone(),
            to: map.to.clone(),
            plan: map.plan.clone(),
            renamed,
            removed,
            added: added.clone(),
            params,
            values,
        });
        self.after_migration(&added)
    }

    /// The checks on the instance as it now is, in the new version's shape.
    fn after_migration(&self, added: &[String]) -> Result<(), Refusal> {
        let refuse = |step: &str, why: String| Refusal::MigrationRefused { step: Some(step.to_string()), why };
        let to = self.ctx.program;
        for id in added {
            let Some(def) = to.node(id) else { continue };
            if let Some(parent) = def.parent.as_deref() {
                if self.state.nodes.get(parent).is_some_and(|p| p.status == NodeStatus::Done) {
                    return Err(refuse(id, format!("it would be added into `{parent}`, which is done")));
                }
            }
            for later in to.policy.nodes.iter().filter(|m| m.after.iter().chain(&m.after_any).any(|d| &d.node == id)) {
                let past = self
                    .state
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.def == later.id)
                    .find(|(_, n)| n.status != NodeStatus::Waiting);
                if let Some((key, n)) = past {
                    return Err(refuse(
                        id,
                        format!(
                            "it would be added before `{key}`, which is {} already: it would run after what it should precede",
                            status_word(n)
                        ),
                    ));
                }
            }
        }
        for (key, n) in self.state.nodes.iter() {
            let Some(def) = to.node(&n.def) else { continue };
            if matches!(n.status, NodeStatus::Open | NodeStatus::Done) && def.window.is_some() {
                let at = if n.status == NodeStatus::Open { Some(self.now) } else { n.closed_at };
                if let (Some(Window::At(from, until)), Some(at)) = (self.window_of(key, def)?, at) {
                    if at < from || at >= until {
                        let off = to.offset;
                        return Err(refuse(
                            key,
                            format!(
                                "its window in the new version, {} to {}, does not hold {}",
                                super::local(from, off),
                                super::local(until, off),
                                if n.status == NodeStatus::Open { "now" } else { "its completion" }
                            ),
                        ));
                    }
                }
            }
            if n.status == NodeStatus::Open {
                let roles = super::breach::acting_roles(def, n);
                if let Some(a) = n.acts.iter().find(|a| !roles.contains(&a.actor.role) && a.action != "urge") {
                    return Err(refuse(
                        key,
                        format!(
                            "`{}` acted on it as `{}`, a role the new version does not give it",
                            a.actor.principal, a.actor.role
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn status_word(n: &super::NodeState) -> &'static str {
    match n.status {
        NodeStatus::Waiting => "waiting",
        NodeStatus::Open => "open",
        NodeStatus::Done => "done",
        NodeStatus::Skipped => "skipped",
    }
}

/// What a migration's commit writes (issue 11.5): the new version may time or list a node whose
/// state the migration did not change (its reminder, its roles), and a node it removed has no
/// definition to compute the old rows from — so every node, before and after, has its timers and
/// open-step rows replaced by what the new version makes of the state now (the next cycle's, which
/// no migration changes, aside).
pub fn whole_changes(ctx: super::Context, before: &super::State, after: &super::State) -> WholeChanges {
    let cycle = super::cycles::CYCLE_NODE;
    let nodes: BTreeSet<String> = before.nodes.keys().chain(after.nodes.keys()).cloned().collect();
    WholeChanges {
        nodes: nodes.into_iter().collect(),
        timers: super::pending_timers(ctx, after).into_iter().filter(|t| t.node != cycle).collect(),
        open_steps: super::open_steps(ctx.program, after).into_iter().filter(|s| s.node != cycle).collect(),
    }
}

/// [`whole_changes`]: the nodes whose timers and rows are replaced, and theirs now.
#[derive(Clone, Debug, PartialEq)]
pub struct WholeChanges {
    pub nodes: Vec<String>,
    pub timers: Vec<super::Timer>,
    pub open_steps: Vec<super::OpenStep>,
}

/// Applies a `migrated` event: the renamed nodes under their new keys, the removed ones gone,
/// the added ones waiting.
pub(super) fn apply_migrated(
    state: &mut super::State,
    renamed: &[(String, String, String)],
    removed: &[String],
    added: &[String],
    params: &BTreeMap<String, civicflow_dsl::value::Value>,
    values: &BTreeMap<String, civicflow_dsl::value::Value>,
) {
    // All taken out before any is put back: a new key may be another's old one.
    let moving: Vec<(String, super::NodeState)> = renamed
        .iter()
        .filter_map(|(old, new, def)| {
            let mut n = state.nodes.get(old)?.clone();
            n.def = def.clone();
            Some((new.clone(), n))
        })
        .collect();
    for (old, _, _) in renamed {
        state.nodes.remove(old);
    }
    for (new, n) in moving {
        state.nodes.insert(new, n);
    }
    for key in removed {
        state.nodes.remove(key);
    }
    for id in added {
        state.nodes.insert(id.clone(), super::NodeState::new(id, None));
    }
    state.params.extend(params.clone());
    state.values = values.clone();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

    use crate::core::{Action, Event, NodeStatus, Status};
    use crate::sim::Simulation;

    const V1: &str = r#"
policy 迁移演练 {
  role 甲
  role 乙
  step 受理: task { by 甲 }
  step 审核: approval { by 乙 after 受理 }
  step 归档: task { by 甲 after 审核 }
}"#;

    /// Version 2 renames 受理 to 登记 and adds 复核 between 审核 and 归档.
    const V2: &str = r#"
policy 迁移演练 {
  version "2"
  role 甲
  role 乙
  step 登记: task { by 甲 }
  step 审核: approval { by 乙 after 登记 }
  step 复核: approval { by 乙 after 审核 }
  step 归档: task { by 甲 after 复核 }
}"#;

    fn done() -> Action {
        Action::Complete { report: "已办".into() }
    }

    #[test]
    fn issue_11_5_an_instance_before_the_added_step_moves_and_runs_it() {
        let mut s = Simulation::new(V1, "2026-03-02 09:00").unwrap();
        s.start(&[]).unwrap();
        s.act("甲", "受理", done()).unwrap();
        let events = s.migrate_to(V2, &[("受理", "登记")]).unwrap();
        let Event::Migrated { renamed, removed, added, .. } = &events[0] else { panic!("{events:?}") };
        assert_eq!(renamed, &vec![("受理".to_string(), "登记".to_string(), "登记".to_string())]);
        assert!(removed.is_empty());
        assert_eq!(added, &vec!["复核".to_string()]);
        assert_eq!(s.status_of("登记"), Some(NodeStatus::Done), "the step done stays done, renamed");
        assert_eq!(s.status_of("审核"), Some(NodeStatus::Open));
        s.act("乙", "审核", Action::Approve { comment: None }).unwrap();
        // The added step runs where the new version puts it.
        assert_eq!((s.status_of("复核"), s.status_of("归档")), (Some(NodeStatus::Open), Some(NodeStatus::Waiting)));
        s.act("乙", "复核", Action::Approve { comment: None }).unwrap();
        s.act("甲", "归档", done()).unwrap();
        assert_eq!(s.state.status, Status::Completed);
        assert_eq!(s.replayed(), s.state);
    }

    #[test]
    fn issue_11_5_an_instance_past_the_added_step_is_refused_naming_it() {
        let mut s = Simulation::new(V1, "2026-03-02 09:00").unwrap();
        s.start(&[]).unwrap();
        s.act("甲", "受理", done()).unwrap();
        s.act("乙", "审核", Action::Approve { comment: None }).unwrap();
        let before = s.state.clone();
        let refused = s.migrate_to(V2, &[("受理", "登记")]).unwrap_err();
        assert_eq!(refused.code(), "F061");
        assert_eq!(
            refused.to_string(),
            "the instance cannot move to the new version: step `复核`: it would be added before `归档`, which is open \
             already: it would run after what it should precede"
        );
        assert_eq!(s.state, before, "nothing recorded");
    }

    #[test]
    fn issue_11_5_an_approval_is_never_lost_and_a_rename_must_fit_the_versions() {
        // Version 3 drops 审核.
        let v3 = V1.replace("step 审核: approval { by 乙 after 受理 }\n", "").replace("after 审核", "after 受理");
        let mut s = Simulation::new(V1, "2026-03-02 09:00").unwrap();
        s.start(&[]).unwrap();
        // Waiting, never acted on: it may go.
        let mut early = Simulation::new(V1, "2026-03-02 09:00").unwrap();
        early.start(&[]).unwrap();
        early.migrate_to(&v3, &[]).unwrap();
        assert!(early.state.nodes.get("审核").is_none());
        s.act("甲", "受理", done()).unwrap();
        s.act("乙", "审核", Action::Approve { comment: None }).unwrap();
        let refused = s.migrate_to(&v3, &[]).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the instance cannot move to the new version: step `审核`: it is done: the new version has no such step, \
             and its record would be lost"
        );
        let bad = s.migrate_to(V2, &[("受理", "办结")]).unwrap_err();
        let v2 = civicflow_dsl::compile(V2).unwrap().hash;
        assert_eq!(
            bad.to_string(),
            format!(
                "the instance cannot move to the new version: `办结` is not a step of the version migrated to ({})",
                &v2[..12]
            )
        );
    }
}
