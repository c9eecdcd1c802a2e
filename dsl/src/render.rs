//! The compiled graph as Graphviz dot and as Mermaid, for people to look at.
//!
//! Phases and sub-procedure calls are clusters (dot) or subgraphs (Mermaid); steps are boxes
//! labelled with their kind and roles; edges carry their trigger.

use std::fmt::Write;

use crate::ir::{NodeKind, Policy, Trigger};

fn kind_label(k: NodeKind) -> String {
    match k {
        NodeKind::Phase => "phase".into(),
        NodeKind::Call => "call".into(),
        NodeKind::Step(s) => {
            serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
        }
    }
}

fn edge_label(t: Trigger) -> Option<&'static str> {
    match t {
        Trigger::Done | Trigger::Contains => None,
        Trigger::Approved => Some("approved"),
        Trigger::Rejected => Some("rejected"),
        Trigger::ReturnOnRejection => Some("rejected: return"),
        Trigger::ReturnOnObjection => Some("objection: return"),
        Trigger::MayReturn => Some("may return"),
        Trigger::ReturnOnBreach => Some("breach: return"),
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Graphviz dot.
pub fn dot(p: &Policy) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&p.name));
    let _ = writeln!(out, "  rankdir=LR;\n  node [shape=box, fontname=\"Noto Sans CJK SC\"];");
    dot_children(p, None, 1, &mut out);
    for e in &p.edges {
        if e.on == Trigger::Contains {
            continue;
        }
        let from = p.node(&e.from);
        let to = p.node(&e.to);
        // Clusters cannot be edge ends in dot: use their entry point, an invisible anchor.
        let end = |id: &str, n: Option<&crate::ir::Node>| match n.map(|n| n.kind) {
            Some(NodeKind::Phase | NodeKind::Call) => quote(&format!("{id}#")),
            _ => quote(id),
        };
        let mut attrs = Vec::new();
        if let Some(l) = edge_label(e.on) {
            attrs.push(format!("label={}", quote(l)));
        }
        if matches!(
            e.on,
            Trigger::ReturnOnRejection | Trigger::ReturnOnObjection | Trigger::MayReturn | Trigger::ReturnOnBreach
        ) {
            attrs.push("style=dashed".into());
        }
        let attrs = if attrs.is_empty() { String::new() } else { format!(" [{}]", attrs.join(", ")) };
        let _ = writeln!(out, "  {} -> {}{attrs};", end(&e.from, from), end(&e.to, to));
    }
    out.push_str("}\n");
    out
}

fn dot_children(p: &Policy, parent: Option<&str>, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    for n in p.nodes.iter().filter(|n| n.parent.as_deref() == parent) {
        match n.kind {
            NodeKind::Phase | NodeKind::Call => {
                let _ = writeln!(out, "{pad}subgraph {} {{", quote(&format!("cluster_{}", n.id)));
                let title = n.title.clone().unwrap_or_else(|| n.name.clone());
                let _ = writeln!(out, "{pad}  label={};", quote(&format!("{title} ({})", kind_label(n.kind))));
                let _ = writeln!(out, "{pad}  {} [shape=point, label=\"\"];", quote(&format!("{}#", n.id)));
                dot_children(p, Some(&n.id), depth + 1, out);
                let _ = writeln!(out, "{pad}}}");
            }
            NodeKind::Step(_) => {
                let mut label =
                    format!("{}\\n{}", n.title.clone().unwrap_or_else(|| n.name.clone()), kind_label(n.kind));
                if !n.roles.is_empty() {
                    let _ = write!(label, " · {}", n.roles.join(", "));
                }
                let _ = writeln!(out, "{pad}{} [label=\"{}\"];", quote(&n.id), label.replace('"', "\\\""));
            }
        }
    }
}

/// Mermaid flowchart.
pub fn mermaid(p: &Policy) -> String {
    let mut out = String::from("flowchart LR\n");
    let ids: std::collections::HashMap<&str, String> =
        p.nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), format!("n{i}"))).collect();
    mermaid_children(p, None, 1, &ids, &mut out);
    for e in &p.edges {
        if e.on == Trigger::Contains {
            continue;
        }
        let (Some(a), Some(b)) = (ids.get(e.from.as_str()), ids.get(e.to.as_str())) else { continue };
        let arrow = if matches!(
            e.on,
            Trigger::ReturnOnRejection | Trigger::ReturnOnObjection | Trigger::MayReturn | Trigger::ReturnOnBreach
        ) {
            "-.->"
        } else {
            "-->"
        };
        match edge_label(e.on) {
            Some(l) => {
                let _ = writeln!(out, "  {a} {arrow}|{l}| {b}");
            }
            None => {
                let _ = writeln!(out, "  {a} {arrow} {b}");
            }
        }
    }
    out
}

fn mermaid_children(
    p: &Policy,
    parent: Option<&str>,
    depth: usize,
    ids: &std::collections::HashMap<&str, String>,
    out: &mut String,
) {
    let pad = "  ".repeat(depth);
    for n in p.nodes.iter().filter(|n| n.parent.as_deref() == parent) {
        let Some(id) = ids.get(n.id.as_str()) else { continue };
        let title = n.title.clone().unwrap_or_else(|| n.name.clone()).replace('"', "#quot;");
        match n.kind {
            NodeKind::Phase | NodeKind::Call => {
                let _ = writeln!(out, "{pad}subgraph {id}[\"{title} ({})\"]", kind_label(n.kind));
                mermaid_children(p, Some(&n.id), depth + 1, ids, out);
                let _ = writeln!(out, "{pad}end");
            }
            NodeKind::Step(_) => {
                let roles = if n.roles.is_empty() { String::new() } else { format!(" · {}", n.roles.join(", ")) };
                let _ = writeln!(out, "{pad}{id}[\"{title}<br/>{}{roles}\"]", kind_label(n.kind));
            }
        }
    }
}

/// An IR expression as policy text, for messages ("the quorum is `present > 4/5 * eligible`").
pub fn expr(e: &crate::ir::Expr) -> String {
    expr_prec(e, 0)
}

fn expr_prec(e: &crate::ir::Expr, outer: u8) -> String {
    use crate::ir::{Expr, Pattern};
    match e {
        Expr::Lit { value } => match value {
            crate::value::Value::Text(t) => format!("{t:?}"),
            other => other.to_string(),
        },
        Expr::Ref { id, .. } => id.rsplit('/').next().unwrap_or(id).to_string(),
        Expr::Field { of, field } => format!("{}.{field}", expr_prec(of, 9)),
        Expr::List { items } => format!("[{}]", items.iter().map(expr).collect::<Vec<_>>().join(", ")),
        Expr::Call { func, args } => {
            let name = serde_json::to_value(func).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            format!("{name}({})", args.iter().map(expr).collect::<Vec<_>>().join(", "))
        }
        Expr::NodeTime { node, end } => format!("{}({node})", if *end { "end" } else { "start" }),
        Expr::NodeField { node, field } => format!("{node}.{field}"),
        Expr::Unary { op, arg } => match op {
            crate::ast::UnOp::Not => format!("not {}", expr_prec(arg, 4)),
            crate::ast::UnOp::Neg => format!("-{}", expr_prec(arg, 8)),
        },
        Expr::Binary { op, lhs, rhs } => {
            let p = op.precedence();
            let s = format!("{} {} {}", expr_prec(lhs, p), op.symbol(), expr_prec(rhs, p + 1));
            if p < outer {
                format!("({s})")
            } else {
                s
            }
        }
        Expr::If { cond, then, otherwise } => {
            format!("if {} {{ {} }} else {{ {} }}", expr(cond), expr(then), expr(otherwise))
        }
        Expr::Match { scrutinee, arms } => {
            let arms: Vec<String> = arms
                .iter()
                .map(|a| {
                    let p = match &a.pattern {
                        Pattern::Any => "_".to_string(),
                        Pattern::Equals { value } => value.to_string(),
                        Pattern::Range { low, high } => format!(
                            "{}..{}",
                            low.as_ref().map(ToString::to_string).unwrap_or_default(),
                            high.as_ref().map(|h| format!("={h}")).unwrap_or_default()
                        ),
                    };
                    format!("{p} => {}", expr(&a.value))
                })
                .collect();
            format!("match {} {{ {} }}", expr(scrutinee), arms.join(", "))
        }
    }
}
