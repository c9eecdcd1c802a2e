//! Who has what to do (待办, issue 10.6): each open step of a running instance with the readers
//! whose inbox lists it — the roles that act on it (with the office a bound role is tied to,
//! R6.1), the principals it was delegated to, the roles it was escalated to (督办, R3.5) — and a
//! next cycle waiting to be started (R0.3) — and each step copied to an office for information
//! (抄送, issue 11.2), open or not, until the office reads it. The store keeps these rows in a table written with
//! every commit, so an inbox is an index read, not a replay of every running instance; the
//! rows are computed here, from the state alone, so the table is what the state says.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use civicflow_dsl::ir::NodeKind;

use super::binding::{bound_on, Bound};
use super::breach::acting_roles;
use super::cycles::CYCLE_NODE;
use super::{NodeStatus, Program, State, Status};

/// Someone an open step is listed for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reader {
    /// A role that acts on the step (in its `by`, or the role it was reassigned to), from any
    /// office holding the role (`office: None`) or from the one office bound to it.
    Acts { role: String, office: Option<String> },
    /// A role that acts on the step but whose office is not known yet (R6.1, F036): nobody may
    /// act in it until it is, so no inbox lists it; it still says whom the step awaits.
    AwaitsBinding { role: String },
    /// A principal the step was delegated to (委托).
    Delegate { principal: String },
    /// A role the step was escalated to (已督办).
    Escalated { role: String },
    /// The role whose task it is to start the next cycle (node `~cycle`).
    StartsCycle { role: String },
    /// An office the step was copied to (抄送) that has not read it yet: listed read-only.
    CopiedTo { office: String },
}

impl Reader {
    /// The key the store keeps the reader under (one index range per key, issue 10.6): `a:ROLE`
    /// (acts, any office), `a:ROLE@OFFICE` (acts, bound), `w:ROLE` (awaits its binding), `d:NAME`
    /// (a delegate), `e:ROLE` (escalated), `c:ROLE` (starts the next cycle), `k:OFFICE` (an unread
    /// copy). A role is a DSL
    /// identifier (no `@`), so the key reads back one way.
    pub fn key(&self) -> String {
        match self {
            Reader::Acts { role, office: None } => format!("a:{role}"),
            Reader::Acts { role, office: Some(office) } => format!("a:{role}@{office}"),
            Reader::AwaitsBinding { role } => format!("w:{role}"),
            Reader::Delegate { principal } => format!("d:{principal}"),
            Reader::Escalated { role } => format!("e:{role}"),
            Reader::StartsCycle { role } => format!("c:{role}"),
            Reader::CopiedTo { office } => format!("k:{office}"),
        }
    }

    /// The keys of every reader a principal is: what its inbox reads. A role whose office is not
    /// known yet lists nothing (`w:`).
    pub fn keys_of(principal: &str, office: &str, roles: &[String]) -> Vec<String> {
        let mut keys: Vec<String> = roles
            .iter()
            .flat_map(|role| {
                [
                    Reader::Acts { role: role.clone(), office: None },
                    Reader::Acts { role: role.clone(), office: Some(office.to_string()) },
                    Reader::Escalated { role: role.clone() },
                    Reader::StartsCycle { role: role.clone() },
                ]
            })
            .chain([
                Reader::Delegate { principal: principal.to_string() },
                Reader::CopiedTo { office: office.to_string() },
            ])
            .map(|r| r.key())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// The keys under which a step awaits `role` (the instance list's filter): acting from any
    /// office, or waiting for its office to be named; a bound role's keys begin with the first
    /// key followed by `@`.
    pub fn awaiting_keys(role: &str) -> [String; 2] {
        [
            Reader::Acts { role: role.to_string(), office: None }.key(),
            Reader::AwaitsBinding { role: role.to_string() }.key(),
        ]
    }
}

/// An open step (or a next cycle to start, or a step copied to an office) and whose inbox lists
/// it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenStep {
    /// The runtime node (`~cycle` for a next cycle).
    pub node: String,
    pub due_at: Option<DateTime<Utc>>,
    pub overdue: bool,
    /// Sorted, each once.
    pub readers: Vec<Reader>,
}

/// Every open step of the instance with its readers, by node.
pub fn open_steps(program: &Program, state: &State) -> Vec<OpenStep> {
    let mut out: Vec<OpenStep> = Vec::new();
    out.extend(state.nodes.iter().filter_map(|(key, _)| open_step(program, state, key)));
    out.extend(next_cycle(state));
    out
}

/// What a commit changes in the instance's open steps: the nodes whose rows differ between
/// `before` and `after`, and those nodes' rows now. Like [`super::timer_changes`], only the nodes
/// the persistent map tells apart are looked at while the status and the instance-wide bindings
/// stay (a binding may open a step to an office on every node).
pub fn open_step_changes(program: &Program, before: &State, after: &State) -> (Vec<String>, Vec<OpenStep>) {
    let (old, new) = if before.status == after.status {
        let keys = before.nodes.changed_keys(&after.nodes);
        let some = |state: &State| {
            let mut out: Vec<OpenStep> = Vec::new();
            out.extend(keys.iter().filter_map(|key| open_step(program, state, key)));
            out.extend(next_cycle(state));
            out
        };
        (some(before), some(after))
    } else {
        (open_steps(program, before), open_steps(program, after))
    };
    diff(old, new)
}

/// [`open_step_changes`] from every node (the property tests' oracle).
#[cfg(test)]
pub(crate) fn open_step_changes_by_scan(
    program: &Program,
    before: &State,
    after: &State,
) -> (Vec<String>, Vec<OpenStep>) {
    diff(open_steps(program, before), open_steps(program, after))
}

fn diff(old: Vec<OpenStep>, new: Vec<OpenStep>) -> (Vec<String>, Vec<OpenStep>) {
    let old: std::collections::BTreeMap<String, OpenStep> = old.into_iter().map(|s| (s.node.clone(), s)).collect();
    let new: std::collections::BTreeMap<String, OpenStep> = new.into_iter().map(|s| (s.node.clone(), s)).collect();
    let changed: BTreeSet<&String> = old.keys().chain(new.keys()).filter(|k| old.get(*k) != new.get(*k)).collect();
    let rows = changed.iter().filter_map(|k| new.get(*k).cloned()).collect();
    (changed.into_iter().cloned().collect(), rows)
}

/// The step at `key` with its readers: those that act while it is open in a running instance,
/// and the offices it was copied to that have not read it, whatever its status (issue 11.2).
fn open_step(program: &Program, state: &State, key: &str) -> Option<OpenStep> {
    let n = state.nodes.get(key)?;
    let copies = n.copies.iter().filter(|(_, c)| c.unread()).map(|(o, _)| Reader::CopiedTo { office: o.clone() });
    let def = program.node(&n.def)?;
    if n.status != NodeStatus::Open || state.status != Status::Running || !matches!(def.kind, NodeKind::Step(_)) {
        let readers: Vec<Reader> = copies.collect();
        return (!readers.is_empty()).then(|| OpenStep {
            node: key.to_string(),
            due_at: None,
            overdue: false,
            readers,
        });
    }
    let mut readers: BTreeSet<Reader> = copies.collect();
    for role in acting_roles(def, n).iter() {
        readers.insert(match bound_on(program, state, key, role) {
            Bound::Open => Reader::Acts { role: role.clone(), office: None },
            Bound::Office(o) => Reader::Acts { role: role.clone(), office: Some(o.to_string()) },
            Bound::Pending(_) => Reader::AwaitsBinding { role: role.clone() },
        });
    }
    readers.extend(n.delegations.keys().map(|p| Reader::Delegate { principal: p.clone() }));
    readers.extend(n.escalated_to.iter().map(|r| Reader::Escalated { role: r.clone() }));
    Some(OpenStep {
        node: key.to_string(),
        due_at: n.due_at,
        overdue: n.overdue,
        readers: readers.into_iter().collect(),
    })
}

/// Issue 12.6: who is late when the step at `key` breaches its deadline: each role acting on it,
/// with the office it is bound to (`None`: any office holding the role, or not yet known). A
/// delegate or an escalated leader is not who was late.
pub fn responsible(program: &Program, state: &State, key: &str) -> Vec<(String, Option<String>)> {
    let Some(step) = open_step(program, state, key) else { return Vec::new() };
    step.readers
        .into_iter()
        .filter_map(|r| match r {
            Reader::Acts { role, office } => Some((role, office)),
            Reader::AwaitsBinding { role } => Some((role, None)),
            _ => None,
        })
        .collect()
}

/// R0.3: the next cycle of a running or completed instance, while it waits for a role to start
/// it.
fn next_cycle(state: &State) -> Option<OpenStep> {
    if !matches!(state.status, Status::Running | Status::Completed) {
        return None;
    }
    let next = state.cycle.next.as_ref().filter(|n| !n.opened)?;
    let role = next.awaiting.as_ref()?;
    Some(OpenStep {
        node: CYCLE_NODE.to_string(),
        due_at: Some(next.due_at),
        overdue: false,
        readers: vec![Reader::StartsCycle { role: role.clone() }],
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::core::{Action, Status};
    use crate::sim::{form, text, Simulation};

    /// R6.1: the department is named by the step before.
    const BOUND_LATER: &str = r#"
policy assign {
  role 民生办
  role 首办部门 bound by 分流.部门
  step 分流: task {
    by 民生办
    form { 部门: text }
  }
  step 办理: task { by 首办部门 after 分流 due 5 workdays }
}"#;

    #[test]
    fn r6_1_an_open_step_is_listed_for_its_bound_office_and_for_whom_it_was_delegated_to() {
        let mut s = Simulation::new(BOUND_LATER, "2026-03-02 09:00").unwrap();
        s.start(&[]).unwrap();
        assert_eq!(
            open_steps(&s.program, &s.state),
            vec![OpenStep {
                node: "分流".into(),
                due_at: None,
                overdue: false,
                readers: vec![Reader::Acts { role: "民生办".into(), office: None }],
            }]
        );
        let before = s.state.clone();
        s.act("民生办", "分流", form(&[("部门", text("城管科"))])).unwrap();
        // 2026-03-02 (Monday) 09:00 + 5 working days: the end of Monday 03-09, in Beijing time.
        let due = Some(chrono::DateTime::parse_from_rfc3339("2026-03-09T16:00:00Z").unwrap().with_timezone(&Utc));
        let listed = OpenStep {
            node: "办理".into(),
            due_at: due,
            overdue: false,
            readers: vec![Reader::Acts { role: "首办部门".into(), office: Some("城管科".into()) }],
        };
        assert_eq!(
            open_step_changes(&s.program, &before, &s.state),
            (vec!["分流".to_string(), "办理".to_string()], vec![listed.clone()])
        );
        let before = s.state.clone();
        s.act("首办部门", "办理", Action::Delegate { to: "王五".into() }).unwrap();
        let mut delegated = listed;
        delegated.readers.insert(1, Reader::Delegate { principal: "王五".into() });
        assert_eq!(open_step_changes(&s.program, &before, &s.state), (vec!["办理".to_string()], vec![delegated]));
    }

    #[test]
    fn a_finished_instance_lists_nothing_and_drops_every_row() {
        let mut s = Simulation::new(BOUND_LATER, "2026-03-02 09:00").unwrap();
        s.start(&[]).unwrap();
        s.act("民生办", "分流", form(&[("部门", text("城管科"))])).unwrap();
        let before = s.state.clone();
        s.act("首办部门", "办理", Action::Complete { report: "已办结".into() }).unwrap();
        assert_eq!(s.state.status, Status::Completed);
        assert!(open_steps(&s.program, &s.state).is_empty());
        assert_eq!(open_step_changes(&s.program, &before, &s.state), (vec!["办理".to_string()], vec![]));
    }
}
