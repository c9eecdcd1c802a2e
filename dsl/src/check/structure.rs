//! Structural checks on the lowered nodes: dependency cycles (E0301), steps that can never open
//! (E0303) and `return` branches that do not lead back (E0304).

use std::collections::{BTreeSet, HashMap, HashSet};

use petgraph::graph::{DiGraph, NodeIndex};

use super::Checker;
use crate::ast::{Outcome, Span};
use crate::diag::{Code, Diagnostic};
use crate::ir::{self, NodeKind, OnRejected, StepKind};

pub(super) fn check(c: &mut Checker) {
    cycles(c);
    unreachable(c);
    returns(c);
}

/// Builds the "must happen before" graph over node starts and ends and reports each cycle once.
fn cycles(c: &mut Checker) {
    let nodes = &c.out.nodes;
    let mut g: DiGraph<(usize, bool), Option<Span>> = DiGraph::new();
    let mut start = HashMap::new();
    let mut end = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        let s = g.add_node((i, false));
        let e = g.add_node((i, true));
        g.add_edge(s, e, None);
        start.insert(n.id.as_str(), s);
        end.insert(n.id.as_str(), e);
    }
    for n in nodes {
        let (Some(&s), Some(&e)) = (start.get(n.id.as_str()), end.get(n.id.as_str())) else { continue };
        if let Some(p) = &n.parent {
            if let (Some(&ps), Some(&pe)) = (start.get(p.as_str()), end.get(p.as_str())) {
                g.add_edge(ps, s, None);
                g.add_edge(e, pe, None);
            }
        }
        let dep_spans = c.spans.nodes.get(&n.id).map(|s| s.after.clone()).unwrap_or_default();
        for d in &n.after {
            if let Some(&de) = end.get(d.node.as_str()) {
                let span = dep_spans.iter().find(|(id, _)| *id == d.node).map(|(_, sp)| *sp);
                g.add_edge(de, s, span);
            }
        }
    }
    let mut reports = Vec::new();
    for scc in petgraph::algo::tarjan_scc(&g) {
        if scc.len() < 2 {
            continue;
        }
        let members: HashSet<NodeIndex> = scc.iter().copied().collect();
        let Some(cycle) = find_cycle(&g, scc[0], &members) else { continue };
        // Name each node once, in cycle order, starting from a dependency edge.
        let mut names: Vec<String> = Vec::new();
        let mut spans = Vec::new();
        for (a, b) in cycle.iter().zip(cycle.iter().cycle().skip(1)) {
            let name = &nodes[g[*a].0].id;
            if names.last() != Some(name) {
                names.push(name.clone());
            }
            if let Some(edge) = g.find_edge(*a, *b) {
                if let Some(sp) = g[edge] {
                    spans.push((sp, nodes[g[*b].0].id.clone(), nodes[g[*a].0].id.clone()));
                }
            }
        }
        if names.len() > 1 && names.first() == names.last() {
            names.pop();
        }
        spans.sort_by_key(|(s, _, _)| s.start);
        let Some((primary, waiter, waited)) = spans.first().cloned() else { continue };
        let mut chain = names.clone();
        if let Some(first) = names.first() {
            chain.push(first.clone());
        }
        let mut d = Diagnostic::error(Code::E0301, primary, format!("dependency cycle: {}", chain.join(" → ")))
            .with_label(format!("`{waiter}` waits for `{waited}`"));
        for (sp, w, x) in spans.iter().skip(1) {
            d = d.with_secondary(*sp, format!("`{w}` waits for `{x}`"));
        }
        d = d.with_help("none of these can start; remove one of the `after` dependencies");
        reports.push(d);
    }
    c.diags.extend(reports);
}

fn find_cycle(
    g: &DiGraph<(usize, bool), Option<Span>>,
    from: NodeIndex,
    members: &HashSet<NodeIndex>,
) -> Option<Vec<NodeIndex>> {
    // Iterative DFS for a path from `from` back to `from` inside the component.
    let mut stack = vec![(from, g.neighbors(from).collect::<Vec<_>>())];
    let mut path = vec![from];
    let mut visited = HashSet::new();
    visited.insert(from);
    while let Some((_, next)) = stack.last_mut() {
        match next.pop() {
            Some(n) if n == from => return Some(path),
            Some(n) if members.contains(&n) && visited.insert(n) => {
                path.push(n);
                stack.push((n, g.neighbors(n).collect()));
            }
            Some(_) => {}
            None => {
                stack.pop();
                path.pop();
            }
        }
    }
    None
}

/// Why a node can never open, if it cannot.
fn reason_never(node: &ir::Node, by_id: &HashMap<&str, &ir::Node>) -> Option<(String, Option<String>)> {
    for d in &node.after {
        let Some(dep) = by_id.get(d.node.as_str()) else { continue };
        let Some(outcome) = d.outcome else { continue };
        let word = if outcome == Outcome::Approved { "approved" } else { "rejected" };
        if dep.kind != NodeKind::Step(StepKind::Approval) {
            let kind = match dep.kind {
                NodeKind::Phase => "a phase".to_string(),
                NodeKind::Call => "a sub-procedure".to_string(),
                NodeKind::Step(k) => format!(
                    "a {} step",
                    serde_json::to_value(k).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
                ),
            };
            return Some((format!("`{}` is {kind}: it is never {word}", dep.id), Some(d.node.clone())));
        }
        if outcome == Outcome::Rejected {
            match &dep.on_rejected {
                Some(OnRejected::Return { node }) => {
                    return Some((
                        format!("`{}` returns to `{node}` when rejected, so it never ends rejected", dep.id),
                        Some(d.node.clone()),
                    ))
                }
                Some(OnRejected::End) => {
                    return Some((format!("a rejection of `{}` ends the procedure", dep.id), Some(d.node.clone())))
                }
                None => {}
            }
        }
    }
    None
}

fn unreachable(c: &mut Checker) {
    let by_id: HashMap<&str, &ir::Node> = c.out.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let never_when: HashMap<&str, Span> = c.never.iter().map(|(id, sp)| (id.as_str(), *sp)).collect();
    // Root causes first.
    let mut roots: Vec<(String, Span, String)> = Vec::new();
    let mut never: BTreeSet<String> = BTreeSet::new();
    for n in &c.out.nodes {
        if let Some(sp) = never_when.get(n.id.as_str()) {
            roots.push((n.id.clone(), *sp, format!("the `when` condition of `{}` is always false", n.id)));
            never.insert(n.id.clone());
        } else if let Some((why, dep)) = reason_never(n, &by_id) {
            let span = c
                .spans
                .nodes
                .get(&n.id)
                .and_then(|s| s.after.iter().find(|(id, _)| Some(id) == dep.as_ref()).map(|(_, sp)| *sp))
                .or_else(|| c.spans.nodes.get(&n.id).map(|s| s.name))
                .unwrap_or_default();
            roots.push((n.id.clone(), span, why));
            never.insert(n.id.clone());
        }
    }
    // Everything after or inside a node that never opens never opens either (to a fixed point).
    let mut follows: HashMap<String, Vec<String>> = HashMap::new();
    loop {
        let mut changed = false;
        for n in &c.out.nodes {
            if never.contains(&n.id) {
                continue;
            }
            let cause = n.after.iter().map(|d| d.node.clone()).chain(n.parent.clone()).find(|d| never.contains(d));
            if let Some(cause) = cause {
                never.insert(n.id.clone());
                follows.entry(cause).or_default().push(n.id.clone());
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for (id, span, why) in roots {
        let mut d = Diagnostic::error(Code::E0303, span, format!("step `{id}` can never open"))
            .with_label(why)
            .with_help("wait for an outcome the step can have, or remove the condition");
        let mut dependents = Vec::new();
        let mut queue = vec![id.clone()];
        while let Some(x) = queue.pop() {
            if let Some(f) = follows.get(&x) {
                for y in f {
                    dependents.push(y.clone());
                    queue.push(y.clone());
                }
            }
        }
        if !dependents.is_empty() {
            dependents.sort();
            d = d.with_note(format!(
                "so neither can {}",
                dependents.iter().map(|x| format!("`{x}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        c.diags.push(d);
    }
}

/// `return X` must lead to a step that comes before (it reopens earlier work).
fn returns(c: &mut Checker) {
    let by_id: HashMap<&str, &ir::Node> = c.out.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for n in &c.out.nodes {
        if let Some(p) = &n.parent {
            children.entry(p.as_str()).or_default().push(n.id.as_str());
        }
    }
    let mut reports = Vec::new();
    for n in &c.out.nodes {
        let span = c.return_spans.get(&n.id).copied().unwrap_or_default();
        let mut targets: Vec<(&str, Span)> = match (&n.on_rejected, &n.on_objection) {
            (Some(OnRejected::Return { node }), _) => vec![(node.as_str(), span)],
            (_, Some(node)) => vec![(node.as_str(), span)],
            _ => Vec::new(),
        };
        for a in &n.on_breach {
            if let ir::BreachAction::Return { node } = a {
                targets.push((node.as_str(), c.breach_spans.get(&n.id).copied().unwrap_or_default()));
            }
        }
        if targets.is_empty() {
            continue;
        }
        let before = predecessors(n, &by_id, &children);
        for (t, span) in targets {
            if t == n.id {
                reports.push(
                    Diagnostic::error(Code::E0304, span, format!("`{}` returns to itself", n.id))
                        .with_label("not an earlier step")
                        .with_help("return to the step whose work must be redone"),
                );
            } else if !before.contains(t) {
                reports.push(
                    Diagnostic::error(
                        Code::E0304,
                        span,
                        format!("`{}` returns to `{t}`, which does not come before it", n.id),
                    )
                    .with_label("not an earlier step")
                    .with_help(format!(
                        "`{t}` must be among the steps `{}` waits for, directly or through others",
                        n.id
                    )),
                );
            }
        }
    }
    c.diags.extend(reports);
}

/// Every node that is done before `n` can open: its dependencies and its ancestors'
/// dependencies, transitively, with everything inside them.
pub(super) fn predecessors<'a>(
    n: &'a ir::Node,
    by_id: &HashMap<&'a str, &'a ir::Node>,
    children: &HashMap<&'a str, Vec<&'a str>>,
) -> HashSet<&'a str> {
    let mut out = HashSet::new();
    let mut queue: Vec<&str> = Vec::new();
    let mut cur = Some(n);
    while let Some(x) = cur {
        queue.extend(x.after.iter().map(|d| d.node.as_str()));
        cur = x.parent.as_deref().and_then(|p| by_id.get(p).copied());
    }
    while let Some(x) = queue.pop() {
        if !out.insert(x) {
            continue;
        }
        if let Some(node) = by_id.get(x) {
            queue.extend(node.after.iter().map(|d| d.node.as_str()));
            let mut anc = node.parent.as_deref().and_then(|p| by_id.get(p).copied());
            while let Some(a) = anc {
                queue.extend(a.after.iter().map(|d| d.node.as_str()));
                anc = a.parent.as_deref().and_then(|p| by_id.get(p).copied());
            }
        }
        if let Some(ch) = children.get(x) {
            queue.extend(ch.iter().copied());
        }
    }
    out
}
