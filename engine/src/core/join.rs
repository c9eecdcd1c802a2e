//! The "any of" join (`after any(A, B)`): a node opens when the first of them is done (with the
//! outcome named, if any); it is skipped only when none of them can be any more.

use civicflow_dsl::ir;

use super::{Decision, NodeStatus, Outcome, Readiness};

impl Decision<'_> {
    /// `None` when the node has no `after any`; else whether the group lets it open.
    pub(super) fn any_of(&self, def: &ir::Node) -> Option<Readiness> {
        if def.after_any.is_empty() {
            return None;
        }
        let mut pending = false;
        for dep in &def.after_any {
            let Some(d) = self.state.nodes.get(&dep.node) else {
                pending = true;
                continue;
            };
            match (d.status, dep.outcome, d.outcome) {
                (NodeStatus::Done, None, _) => return Some(Readiness::Ready),
                (NodeStatus::Done, Some(ir::Outcome::Approved), Some(Outcome::Approved))
                | (NodeStatus::Done, Some(ir::Outcome::Rejected), Some(Outcome::Rejected)) => {
                    return Some(Readiness::Ready)
                }
                (NodeStatus::Done | NodeStatus::Skipped, _, _) => {}
                (NodeStatus::Waiting | NodeStatus::Open, _, _) => pending = true,
            }
        }
        Some(if pending {
            Readiness::Wait
        } else {
            let names: Vec<&str> = def.after_any.iter().map(|d| d.node.as_str()).collect();
            Readiness::Skip(format!("none of `{}` happened", names.join("`, `")))
        })
    }
}
