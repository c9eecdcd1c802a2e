//! Schedule feasibility: can every node open and finish inside its window, after its
//! dependencies, for at least its minimum duration?
//!
//! Each node has a start `S` and an end `E` (in days); windows, dependencies, nesting and
//! minimum durations are difference constraints `x_v − x_u ≤ w`, an edge `u → v` of weight `w`.
//! The system has a solution iff the graph has no negative cycle (Bellman–Ford, here as SPFA).
//! A negative cycle is a chain of constraints that contradict each other; it is reported as E0402
//! naming that chain. Bounds are taken leniently so that no sound policy is refused: a working-day
//! offset counts as at least as many calendar days where it lengthens, and is left unbounded where
//! it would shorten; months count 28–31 days, years 365–366.
//!
//! Windows that can be compared directly are checked first: a window that ends before it starts
//! (E0403) and a window that reaches outside its parent's (E0401).

use std::collections::{HashMap, VecDeque};

use crate::ast::{BinOp, Span, TimeUnit};
use crate::check::SpanTable;
use crate::diag::{Code, Diagnostic};
use crate::eval::day_number;
use crate::ir::{self, Expr, RefKind};
use crate::value::Value;

/// What a bound is measured from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Anchor {
    /// 1970-01-01.
    Origin,
    /// A parameter or derived value of type date.
    Value(String),
    Start(String),
    End(String),
}

/// `anchor + [lo, hi]` days; `None` = unbounded on that side.
#[derive(Clone, Debug)]
struct Bound {
    anchor: Anchor,
    lo: Option<i64>,
    hi: Option<i64>,
    text: String,
}

#[derive(Clone, Debug)]
struct Edge {
    from: usize,
    to: usize,
    weight: i64,
    /// Why the constraint exists, for the diagnostic; `None` for structural edges.
    reason: Option<(Span, String)>,
}

pub fn check(policy: &ir::Policy, spans: &SpanTable) -> Vec<Diagnostic> {
    let mut s = Solver::new(policy);
    let mut diags = Vec::new();
    let windows: HashMap<&str, (Bound, Bound)> = policy
        .nodes
        .iter()
        .filter_map(|n| {
            let w = n.window.as_ref()?;
            Some((n.id.as_str(), (s.bound(&w.from, 0)?, s.bound(&w.to, 0)?)))
        })
        .collect();
    let mut bad_window = std::collections::HashSet::new();
    for n in &policy.nodes {
        let Some((from, to)) = windows.get(n.id.as_str()) else {
            continue;
        };
        let span = spans.nodes.get(&n.id).and_then(|s| s.window).unwrap_or_default();
        if from.anchor == to.anchor {
            if let (Some(f), Some(t)) = (from.lo, to.hi) {
                if f > t {
                    diags.push(
                        Diagnostic::error(Code::E0403, span, format!("the window of `{}` ends before it starts", n.id))
                            .with_label(format!("{} is after {}", from.text, to.text))
                            .with_help("swap the dates, or correct the one that is wrong"),
                    );
                    bad_window.insert(n.id.as_str());
                    continue;
                }
            }
        }
        // Nearest ancestor with a window.
        let mut parent = n.parent.as_deref();
        while let Some(p) = parent {
            if let Some((pf, pt)) = windows.get(p) {
                let pspan = spans.nodes.get(p).and_then(|s| s.window).unwrap_or_default();
                let early = pf.anchor == from.anchor && matches!((from.lo, pf.hi), (Some(a), Some(b)) if a < b);
                let late = pt.anchor == to.anchor && matches!((to.hi, pt.lo), (Some(a), Some(b)) if a > b);
                if early || late {
                    let which = match (early, late) {
                        (true, true) => {
                            format!("starts before {} and ends after {}", pf.text, pt.text)
                        }
                        (true, false) => format!("starts on {}, before {}", from.text, pf.text),
                        _ => format!("ends on {}, after {}", to.text, pt.text),
                    };
                    diags.push(
                        Diagnostic::error(
                            Code::E0401,
                            span,
                            format!("the window of `{}` is outside the window of `{p}`", n.id),
                        )
                        .with_label(format!("`{}` {which}", n.name))
                        .with_secondary(pspan, format!("`{p}` runs {} .. {}", pf.text, pt.text))
                        .with_help(format!(
                            "a step runs inside its phase: keep its window within {} .. {}",
                            pf.text, pt.text
                        )),
                    );
                    bad_window.insert(n.id.as_str());
                }
                break;
            }
            parent = policy.node(p).and_then(|x| x.parent.as_deref());
        }
    }
    for n in &policy.nodes {
        let ns = spans.nodes.get(&n.id);
        let (st, en) = (s.var(&Anchor::Start(n.id.clone())), s.var(&Anchor::End(n.id.clone())));
        // A node ends no earlier than it starts.
        s.edge(en, st, 0, None);
        if let Some(p) = &n.parent {
            let (ps, pe) = (s.var(&Anchor::Start(p.clone())), s.var(&Anchor::End(p.clone())));
            s.edge(st, ps, 0, None);
            s.edge(pe, en, 0, None);
        }
        for d in &n.after {
            let de = s.var(&Anchor::End(d.node.clone()));
            let span =
                ns.and_then(|x| x.after.iter().find(|(id, _)| *id == d.node).map(|(_, sp)| *sp)).unwrap_or_default();
            s.edge(st, de, 0, Some((span, format!("`{}` starts after `{}` ends", n.id, d.node))));
        }
        if let Some(min) = n.min_duration {
            let days = i64::from(min.amount) * unit_days(min.unit).0;
            let span = ns.and_then(|x| x.min).unwrap_or_default();
            s.edge(en, st, -days, Some((span, format!("`{}` lasts at least {min}", n.id))));
        }
        if bad_window.contains(n.id.as_str()) {
            continue;
        }
        if let Some((from, to)) = windows.get(n.id.as_str()) {
            let span = ns.and_then(|x| x.window).unwrap_or_default();
            if let Some(lo) = from.lo {
                let a = s.var(&from.anchor);
                s.edge(st, a, -lo, Some((span, format!("`{}` opens on {} at the earliest", n.id, from.text))));
            }
            if let Some(hi) = to.hi {
                let a = s.var(&to.anchor);
                s.edge(a, en, hi + 1, Some((span, format!("`{}` must end by {}", n.id, to.text))));
            }
        }
    }
    diags.extend(s.solve());
    diags
}

fn unit_days(u: TimeUnit) -> (i64, Option<i64>) {
    match u {
        TimeUnit::Days => (1, Some(1)),
        TimeUnit::Workdays => (1, None),
        TimeUnit::Months => (28, Some(31)),
        TimeUnit::Years => (365, Some(366)),
    }
}

struct Solver<'p> {
    policy: &'p ir::Policy,
    vars: HashMap<Anchor, usize>,
    names: Vec<Anchor>,
    edges: Vec<Edge>,
}

impl<'p> Solver<'p> {
    fn new(policy: &'p ir::Policy) -> Self {
        let mut s = Solver { policy, vars: HashMap::new(), names: Vec::new(), edges: Vec::new() };
        s.var(&Anchor::Origin);
        // Create node variables in declaration order so that the solver's queue (reversed) runs
        // from the latest constraints to the earliest: near-linear on schedules written in order.
        for n in &policy.nodes {
            s.var(&Anchor::Start(n.id.clone()));
            s.var(&Anchor::End(n.id.clone()));
        }
        s
    }

    fn var(&mut self, a: &Anchor) -> usize {
        if let Some(i) = self.vars.get(a) {
            return *i;
        }
        let i = self.names.len();
        self.vars.insert(a.clone(), i);
        self.names.push(a.clone());
        i
    }

    /// `x_to − x_from ≤ weight`.
    fn edge(&mut self, from: usize, to: usize, weight: i64, reason: Option<(Span, String)>) {
        self.edges.push(Edge { from, to, weight, reason });
    }

    /// Reads a date expression as anchor + offset, if it has that shape.
    fn bound(&self, e: &Expr, depth: u32) -> Option<Bound> {
        if depth > 16 {
            return None;
        }
        match e {
            Expr::Lit { value: Value::Date(d) } => {
                let n = day_number(*d);
                Some(Bound { anchor: Anchor::Origin, lo: Some(n), hi: Some(n), text: d.to_string() })
            }
            Expr::Ref { kind: RefKind::Param, id } => {
                Some(Bound { anchor: Anchor::Value(id.clone()), lo: Some(0), hi: Some(0), text: format!("`{id}`") })
            }
            Expr::Ref { kind: RefKind::Value, id } => {
                let d = self.policy.values.iter().find(|d| d.id == *id)?;
                let mut b = self.bound(&d.expr, depth + 1)?;
                if b.anchor != Anchor::Origin {
                    b.text = format!("`{id}`");
                }
                Some(b)
            }
            Expr::NodeTime { node, end } => {
                let anchor = if *end { Anchor::End(node.clone()) } else { Anchor::Start(node.clone()) };
                let text = format!("{}({node})", if *end { "end" } else { "start" });
                Some(Bound { anchor, lo: Some(0), hi: Some(0), text })
            }
            Expr::Binary { op: op @ (BinOp::Add | BinOp::Sub), lhs, rhs } => {
                let (base, span) = match (lhs.as_ref(), rhs.as_ref()) {
                    (x, Expr::Lit { value: Value::Duration(s) }) => (x, *s),
                    (Expr::Lit { value: Value::Duration(s) }, x) if *op == BinOp::Add => (x, *s),
                    _ => return None,
                };
                let b = self.bound(base, depth + 1)?;
                let (per_lo, per_hi) = unit_days(span.unit);
                let n = i64::from(span.amount);
                let (dlo, dhi) = if *op == BinOp::Add {
                    (Some(n * per_lo), per_hi.map(|h| n * h))
                } else {
                    (per_hi.map(|h| -n * h), Some(-n * per_lo))
                };
                let (lo, hi) = (b.lo.zip(dlo).map(|(a, c)| a + c), b.hi.zip(dhi).map(|(a, c)| a + c));
                let text = match &b.anchor {
                    Anchor::Origin if lo == hi => lo.and_then(date_of).unwrap_or_else(|| b.text.clone()),
                    _ => format!("{} {} {span}", b.text, op.symbol()),
                };
                Some(Bound { anchor: b.anchor, lo, hi, text })
            }
            _ => None,
        }
    }

    /// SPFA from a virtual source joined to every variable with weight 0; reports up to five
    /// independent contradictions.
    fn solve(mut self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for _ in 0..5 {
            match self.negative_cycle() {
                None => break,
                Some(cycle) => {
                    out.push(self.explain(&cycle));
                    // Drop the cycle's reasoned edges and look for another contradiction.
                    let drop: std::collections::HashSet<usize> =
                        cycle.iter().copied().filter(|e| self.edges[*e].reason.is_some()).collect();
                    if drop.is_empty() {
                        break;
                    }
                    let mut i = 0;
                    self.edges.retain(|_| {
                        let keep = !drop.contains(&i);
                        i += 1;
                        keep
                    });
                }
            }
        }
        out
    }

    /// Edge indices of a negative cycle, in order, if there is one.
    fn negative_cycle(&self) -> Option<Vec<usize>> {
        let n = self.names.len();
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, e) in self.edges.iter().enumerate() {
            adj[e.from].push(i);
        }
        let mut dist = vec![0i64; n];
        let mut len = vec![0usize; n];
        let mut pred: Vec<Option<usize>> = vec![None; n];
        let mut queued = vec![true; n];
        let mut queue: VecDeque<usize> = (0..n).rev().collect();
        while let Some(u) = queue.pop_front() {
            queued[u] = false;
            for &ei in &adj[u] {
                let e = &self.edges[ei];
                let nd = dist[u].saturating_add(e.weight);
                if nd < dist[e.to] {
                    dist[e.to] = nd;
                    pred[e.to] = Some(ei);
                    len[e.to] = len[u] + 1;
                    if len[e.to] >= n {
                        return Some(self.cycle_from(e.to, &pred));
                    }
                    if !queued[e.to] {
                        queued[e.to] = true;
                        queue.push_back(e.to);
                    }
                }
            }
        }
        None
    }

    fn cycle_from(&self, start: usize, pred: &[Option<usize>]) -> Vec<usize> {
        // Walk back n steps to be sure to stand on the cycle, then collect it.
        let mut v = start;
        for _ in 0..self.names.len() {
            match pred[v] {
                Some(e) => v = self.edges[e].from,
                None => break,
            }
        }
        let first = v;
        let mut cycle = Vec::new();
        while let Some(e) = pred[v] {
            cycle.push(e);
            v = self.edges[e].from;
            if v == first || cycle.len() > self.names.len() {
                break;
            }
        }
        cycle.reverse();
        cycle
    }

    fn explain(&self, cycle: &[usize]) -> Diagnostic {
        let short: i64 = -cycle.iter().map(|e| self.edges[*e].weight).sum::<i64>();
        let reasons: Vec<&(Span, String)> = cycle.iter().filter_map(|e| self.edges[*e].reason.as_ref()).collect();
        let mut nodes: Vec<String> = Vec::new();
        for e in cycle {
            for a in [&self.names[self.edges[*e].from], &self.names[self.edges[*e].to]] {
                if let Anchor::Start(id) | Anchor::End(id) = a {
                    if !nodes.contains(id) {
                        nodes.push(id.clone());
                    }
                }
            }
        }
        // Present the chain in time order where possible: windows first, then the rest.
        let primary = reasons
            .iter()
            .find(|(_, t)| t.contains("must end by"))
            .or_else(|| reasons.first())
            .map(|(s, t)| (*s, t.clone()))
            .unwrap_or_default();
        let mut d = Diagnostic::error(
            Code::E0402,
            primary.0,
            format!(
                "the schedule cannot be met: {} need{} {short} more day{} than the windows allow",
                nodes.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
                if nodes.len() == 1 { "s" } else { "" },
                if short == 1 { "" } else { "s" }
            ),
        )
        .with_label(primary.1.clone());
        for (span, text) in &reasons {
            if *text != primary.1 {
                d = d.with_secondary(*span, text.clone());
            }
        }
        d.with_help("widen a window, shorten a minimum duration, or drop a dependency")
    }
}

fn date_of(day: i64) -> Option<String> {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    epoch.checked_add_signed(chrono::Duration::days(day)).map(|d| d.to_string())
}
