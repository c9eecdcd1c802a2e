//! Advancing an instance after a command (issue 10.2): open every node whose parent is open and
//! whose dependencies are done, skip what can no longer happen, complete groups whose members
//! are all closed, and complete the instance.
//!
//! The rule was first written as a scan: visit every node in declaration order, pass after pass,
//! until a pass changes nothing — O(nodes) per command even when one step changed. The advance
//! here visits only what can change: the nodes the command's events touched and the nodes that
//! read them ([`Program::watchers`]), in the same order and passes as the scan, so it emits the
//! very same events. That rests on two facts. A node's visit reads only the nodes it watches
//! (its parent or template, its `after` and `after any` nodes, a `due … after` node, its members
//! — and, through a skipped node, what that node reads, for "a branch not taken"). And a state
//! the engine stored is settled: the scan would change nothing in it. The scan is kept as the
//! oracle the property tests compare with on every command (`decide_by_scan`, a test-only entry).

use std::collections::{BTreeMap, HashMap, HashSet};

use civicflow_dsl::ir::{self, NodeKind};

use super::{outcome_word, period, Decision, Due, Event, NodeState, NodeStatus, Outcome, Refusal, Status};

/// Where a runtime key sits in the scan's order: its node's declaration index, then 0 for the
/// node itself or 1 + i for its i-th fan-out copy.
type Position = (usize, usize);

/// The nodes still to visit: those of the current pass after the cursor, and those of the next.
#[derive(Default)]
struct Worklist {
    current: BTreeMap<Position, String>,
    next: BTreeMap<Position, String>,
    cursor: Option<Position>,
    /// Copies made during this pass: the scan's pass took its keys before they existed, so they
    /// wait for the next pass.
    born: HashSet<String>,
}

impl Worklist {
    fn push(&mut self, position: Position, key: &str) {
        let this_pass = self.cursor.is_none_or(|c| position > c) && !self.born.contains(key);
        let pass = if this_pass { &mut self.current } else { &mut self.next };
        pass.entry(position).or_insert_with(|| key.to_string());
    }
}

impl Decision<'_> {
    /// Opens, skips and completes until nothing changes (see the module's doc).
    pub(super) fn advance(&mut self) -> Result<(), Refusal> {
        if self.by_scan {
            return self.advance_by_scan();
        }
        let mut work = Worklist::default();
        self.mark(&mut work, 0);
        loop {
            let Some((position, key)) = work.current.pop_first() else {
                if work.next.is_empty() {
                    break;
                }
                work.current = std::mem::take(&mut work.next);
                work.cursor = None;
                work.born.clear();
                continue;
            };
            work.cursor = Some(position);
            let from = self.events.len();
            self.visit(&key)?;
            self.mark(&mut work, from);
        }
        self.complete_instance();
        Ok(())
    }

    /// Puts on the worklist what the events from `from` on touched and what reads it.
    fn mark(&self, work: &mut Worklist, from: usize) {
        for event in &self.events[from..] {
            if let (Event::Expanded { copies, .. }, Some(_)) = (event, work.cursor) {
                work.born.extend(copies.iter().map(|(k, _)| k.clone()));
            }
            for key in touched(event) {
                self.push_with_readers(work, key);
            }
        }
    }

    /// `key` and every node that reads it; through a skipped reader, that reader's readers too
    /// (whether it lay on a branch not taken can change with what it read).
    fn push_with_readers(&self, work: &mut Worklist, key: &str) {
        if let Some(p) = self.position(key) {
            work.push(p, key);
        }
        // Skipped readers are few: a list is the cheaper set.
        let mut seen: Vec<&str> = Vec::new();
        let mut stack: Vec<&str> = vec![key];
        while let Some(k) = stack.pop() {
            if seen.contains(&k) {
                continue;
            }
            seen.push(k);
            for reader in self.readers(k) {
                let Some(n) = self.state.nodes.get(reader) else { continue };
                if n.status == NodeStatus::Skipped {
                    stack.push(reader);
                }
                if let Some(p) = self.position(reader) {
                    work.push(p, reader);
                }
            }
        }
    }

    /// The runtime keys whose visit reads `key`.
    fn readers<'s>(&'s self, key: &str) -> Vec<&'s str> {
        let Some(n) = self.state.nodes.get(key) else { return Vec::new() };
        if n.element.is_some() {
            // A copy is read by its template only (it completes with its copies).
            return vec![n.def.as_str()];
        }
        let mut out: Vec<&str> = self.ctx.program.watchers(&n.def).iter().map(String::as_str).collect();
        if self.ctx.program.node(&n.def).is_some_and(|d| d.for_each.is_some()) {
            out.extend(self.state.nodes.copies_of(&n.def).map(|(k, _)| k.as_str()));
        }
        out
    }

    /// The key's place in the scan's order; `None` for a key the scan never visits.
    fn position(&self, key: &str) -> Option<Position> {
        let n = self.state.nodes.get(key)?;
        let index = self.ctx.program.index_of(&n.def)?;
        match (&n.element, key == n.def) {
            (None, true) => Some((index, 0)),
            (Some(_), false) => Some((index, copy_index(key) + 1)),
            _ => None,
        }
    }

    /// One node's turn: whether it opened, was skipped, got its deadline or completed.
    fn visit(&mut self, key: &str) -> Result<bool, Refusal> {
        let Some(n) = self.state.nodes.get(key) else { return Ok(false) };
        let status = n.status;
        let Some(def) = self.ctx.program.node(&n.def) else { return Ok(false) };
        let mut changed = false;
        match status {
            NodeStatus::Waiting => match self.readiness(key, def) {
                Readiness::Wait => {}
                Readiness::Skip(reason) => {
                    self.emit(Event::Skipped { node: key.to_string(), reason });
                    changed = true;
                }
                Readiness::Ready => {
                    self.open(key, def)?;
                    changed = true;
                }
            },
            NodeStatus::Open => {
                // `due N days after X` is set once X is done.
                if let (Some(d @ ir::Deadline::AfterDone { node: other, .. }), Due::None) =
                    (&def.deadline, self.state.nodes.get(key).map_or(Due::None, NodeState::due))
                {
                    if self.state.nodes.get(other).is_some_and(|o| o.closed_at.is_some()) {
                        match self.deadline(key, d, self.now)? {
                            Some(period::PeriodEnd::At(due_at)) => {
                                self.emit(Event::DeadlineSet { node: key.to_string(), due_at });
                                changed = true;
                            }
                            Some(period::PeriodEnd::AwaitingCalendar { year }) => {
                                let from = self.now;
                                self.emit(Event::DeadlineAwaitingCalendar { node: key.to_string(), year, from });
                                changed = true;
                            }
                            None => {}
                        }
                    }
                }
                // Groups (phases, calls, fan-out templates) complete with their members.
                let is_template =
                    def.for_each.is_some() && self.state.nodes.get(key).is_some_and(|n| n.element.is_none());
                if (matches!(def.kind, NodeKind::Phase | NodeKind::Call) || is_template)
                    && self.members_closed(key, def, is_template)
                {
                    self.emit(Event::Completed { node: key.to_string(), outcome: Outcome::Done });
                    changed = true;
                }
            }
            NodeStatus::Done | NodeStatus::Skipped => {}
        }
        Ok(changed)
    }

    /// The instance completes when every top-level node is closed. Checked from the last
    /// declared: in a sequence that is the one still waiting, so the check stops at once.
    fn complete_instance(&mut self) {
        let top_done = self.ctx.program.policy.nodes.iter().rev().filter(|n| n.parent.is_none()).all(|n| {
            self.state.nodes.get(&n.id).is_some_and(|x| matches!(x.status, NodeStatus::Done | NodeStatus::Skipped))
        });
        if top_done && self.state.status == Status::Running {
            self.emit(Event::InstanceCompleted);
        }
    }

    /// The advance as it was first written, kept as the oracle of the property tests: every
    /// node visited in declaration order, pass after pass, until a pass changes nothing. Only a
    /// decision made by [`super::decide_by_scan`] takes it.
    fn advance_by_scan(&mut self) -> Result<(), Refusal> {
        loop {
            let mut changed = false;
            for key in self.order() {
                changed |= self.visit(&key)?;
            }
            if !changed {
                break;
            }
        }
        self.complete_instance();
        Ok(())
    }

    /// Runtime keys in declaration order, fan-out copies after their template.
    pub(super) fn order(&self) -> Vec<String> {
        let mut copies: HashMap<&str, Vec<&String>> = HashMap::new();
        for (k, n) in &self.state.nodes {
            if n.element.is_some() {
                copies.entry(n.def.as_str()).or_default().push(k);
            }
        }
        let mut out = Vec::with_capacity(self.state.nodes.len());
        for n in &self.ctx.program.policy.nodes {
            out.push(n.id.clone());
            if let Some(c) = copies.get(n.id.as_str()) {
                let mut c: Vec<&String> = c.clone();
                c.sort_by_key(|k| copy_index(k));
                out.extend(c.into_iter().cloned());
            }
        }
        out
    }

    /// Whether every member of a group is done or skipped: a phase's or call's children, a
    /// template's copies (found by key range, not by a walk over every node).
    fn members_closed(&self, key: &str, def: &ir::Node, is_template: bool) -> bool {
        let closed = |n: &NodeState| matches!(n.status, NodeStatus::Done | NodeStatus::Skipped);
        if is_template {
            self.state.nodes.copies_of(&def.id).all(|(k, n)| k.as_str() == key || closed(n))
        } else {
            self.ctx.program.children(&def.id).iter().all(|m| self.state.nodes.get(m).is_none_or(closed))
        }
    }

    pub(super) fn readiness(&self, key: &str, def: &ir::Node) -> Readiness {
        let is_copy = self.state.nodes.get(key).is_some_and(|n| n.element.is_some());
        // A copy waits for its template to open; anything else for its parent.
        let parent = if is_copy { Some(def.id.as_str()) } else { def.parent.as_deref() };
        if let Some(p) = parent {
            match self.state.nodes.get(p).map(|n| n.status) {
                Some(NodeStatus::Open) => {}
                Some(NodeStatus::Skipped) => return Readiness::Skip(format!("`{p}` was skipped")),
                _ => return Readiness::Wait,
            }
        }
        if is_copy {
            return Readiness::Ready;
        }
        if let Some(r) = self.any_of(def) {
            if !matches!(r, Readiness::Ready) {
                return r;
            }
        }
        for dep in &def.after {
            let Some(d) = self.state.nodes.get(&dep.node) else { return Readiness::Wait };
            match (d.status, dep.outcome, d.outcome) {
                (NodeStatus::Done, None, _) => {}
                // A step skipped by its own `when` is passed through; one on a branch not taken
                // takes what waits for it along (R3.4: the other branch of 社区研判 never runs).
                (NodeStatus::Skipped, None, _) if self.not_taken(&dep.node) => {
                    return Readiness::Skip(format!("`{}` is on a branch not taken", dep.node))
                }
                (NodeStatus::Skipped, None, _) => {}
                (NodeStatus::Done, Some(want), Some(got)) => {
                    let ok = matches!(
                        (want, got),
                        (ir::Outcome::Approved, Outcome::Approved) | (ir::Outcome::Rejected, Outcome::Rejected)
                    );
                    if !ok {
                        return Readiness::Skip(format!("`{}` was not {}", dep.node, outcome_word(want)));
                    }
                }
                (NodeStatus::Skipped, Some(want), _) | (NodeStatus::Done, Some(want), None) => {
                    return Readiness::Skip(format!("`{}` was not {}", dep.node, outcome_word(want)))
                }
                _ => return Readiness::Wait,
            }
        }
        Readiness::Ready
    }

    /// Whether a skipped node lies on a branch not taken: it waited for an outcome that did not
    /// happen, for such a node, or sits in such a phase. Not a node skipped by its own `when`.
    fn not_taken(&self, key: &str) -> bool {
        let Some(n) = self.state.nodes.get(key).filter(|n| n.status == NodeStatus::Skipped) else { return false };
        let Some(def) = self.ctx.program.node(&n.def) else { return false };
        if def.parent.as_deref().is_some_and(|p| self.not_taken(p)) {
            return true;
        }
        def.after.iter().any(|dep| {
            let Some(d) = self.state.nodes.get(&dep.node) else { return false };
            match (dep.outcome, d.status, d.outcome) {
                (Some(_), NodeStatus::Skipped, _) => true,
                (Some(want), NodeStatus::Done, got) => !matches!(
                    (want, got),
                    (ir::Outcome::Approved, Some(Outcome::Approved)) | (ir::Outcome::Rejected, Some(Outcome::Rejected))
                ),
                (None, NodeStatus::Skipped, _) => self.not_taken(&dep.node),
                _ => false,
            }
        })
    }
}

pub(super) enum Readiness {
    Wait,
    Ready,
    Skip(String),
}

pub(super) fn copy_index(key: &str) -> usize {
    key.rsplit_once('[').and_then(|(_, r)| r.trim_end_matches(']').parse().ok()).unwrap_or(0)
}

/// The runtime keys an event changes: the node it is about, and for a start, a fan-out and a
/// return every node they make, reset or reopen.
fn touched(event: &Event) -> Vec<&str> {
    match event {
        Event::Started { nodes, .. } => nodes.iter().map(|(k, _, _)| k.as_str()).collect(),
        Event::Expanded { def, copies } => {
            std::iter::once(def.as_str()).chain(copies.iter().map(|(k, _)| k.as_str())).collect()
        }
        Event::Returned { from, to, reset, reopened, .. } => {
            [from, to].into_iter().chain(reset).chain(reopened).map(String::as_str).collect()
        }
        other => other.node().into_iter().collect(),
    }
}
