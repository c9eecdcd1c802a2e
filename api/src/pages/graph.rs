//! The compiled graph as SVG: a simple layered layout computed from the IR. A node's layer is
//! one more than its parent's and than each node it waits for (`after`); nodes of a layer are
//! stacked in the policy's order. Open nodes are marked (the current position), done ones shaded.

use std::collections::HashMap;
use std::fmt::Write as _;

use civicflow_dsl::ir::{NodeKind, Policy};

use super::esc;

const W: usize = 170;
const H: usize = 34;
const GAP_X: usize = 40;
const GAP_Y: usize = 14;

/// The SVG of a policy's graph; `open` and `done` are runtime node ids (fan-out copies `id[i]`
/// mark their definition).
pub fn svg(policy: &Policy, open: &[&str], done: &[&str]) -> String {
    let base = |id: &str| -> String { id.split('[').next().unwrap_or(id).to_string() };
    let strip = |ids: &[&str]| -> Vec<String> {
        ids.iter()
            .map(|id| id.split('/').map(|p| p.split('[').next().unwrap_or(p)).collect::<Vec<_>>().join("/"))
            .collect()
    };
    let open = strip(open);
    let done = strip(done);
    let mut layer: HashMap<&str, usize> = HashMap::new();
    // Nodes are written parents first and mostly in order; relax a few times for later `after`s.
    for _ in 0..4 {
        for n in &policy.nodes {
            let mut l = n.parent.as_deref().and_then(|p| layer.get(p)).map_or(0, |l| l + 1);
            for d in &n.after {
                if let Some(dl) = layer.get(d.node.as_str()) {
                    l = l.max(dl + 1);
                }
            }
            layer.insert(n.id.as_str(), l);
        }
    }
    let mut rows: Vec<usize> = Vec::new();
    let mut pos: HashMap<&str, (usize, usize)> = HashMap::new();
    for n in &policy.nodes {
        let l = layer.get(n.id.as_str()).copied().unwrap_or(0);
        if rows.len() <= l {
            rows.resize(l + 1, 0);
        }
        let x = 10 + l * (W + GAP_X);
        let y = 10 + rows[l] * (H + GAP_Y);
        rows[l] += 1;
        pos.insert(n.id.as_str(), (x, y));
    }
    let width = 20 + rows.len() * (W + GAP_X);
    let height = 20 + rows.iter().max().copied().unwrap_or(1) * (H + GAP_Y);
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="graph"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#667"/></marker></defs>"##
    );
    for n in &policy.nodes {
        let Some(&(x, y)) = pos.get(n.id.as_str()) else { continue };
        let mut edges: Vec<(&str, &str)> = n.after.iter().map(|d| (d.node.as_str(), "")).collect();
        if let Some(p) = n.parent.as_deref() {
            edges.push((p, "stroke-dasharray=\"4 3\""));
        }
        for (from, dash) in edges {
            if let Some(&(fx, fy)) = pos.get(from) {
                let _ = write!(
                    out,
                    r##"<path d="M{} {} C{} {} {} {} {} {}" fill="none" stroke="#889" {dash} marker-end="url(#arrow)"/>"##,
                    fx + W,
                    fy + H / 2,
                    fx + W + GAP_X / 2,
                    fy + H / 2,
                    x - GAP_X / 2,
                    y + H / 2,
                    x,
                    y + H / 2
                );
            }
        }
    }
    for n in &policy.nodes {
        let Some(&(x, y)) = pos.get(n.id.as_str()) else { continue };
        let id = base(&n.id);
        let class = if open.contains(&id) {
            "node open"
        } else if done.contains(&id) {
            "node done"
        } else {
            "node"
        };
        let kind = match n.kind {
            NodeKind::Phase => "phase".to_string(),
            NodeKind::Call => "call".to_string(),
            NodeKind::Step(k) => crate::http::instances::word(&k),
        };
        let label: String = n.title.as_deref().unwrap_or(&n.name).chars().take(11).collect();
        let _ = write!(
            out,
            r#"<g class="{class}"><title>{}</title><rect x="{x}" y="{y}" width="{W}" height="{H}" rx="6"/><text x="{}" y="{}">{}</text><text class="k" x="{}" y="{}">{}</text></g>"#,
            esc(&n.id),
            x + 8,
            y + 15,
            esc(&label),
            x + 8,
            y + 28,
            esc(&kind)
        );
    }
    out.push_str("</svg>");
    out
}
