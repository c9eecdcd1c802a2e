//! Parameter ranges and durations from parameters (`due 办结时限 workdays`): checked when an
//! instance starts, so a −1 party-member count or a negative period never starts (F011, F045).

use std::collections::BTreeMap;

use civicflow_dsl::eval::{self, Env};
use civicflow_dsl::ir::{self, RefKind};
use civicflow_dsl::value::Value;

use super::{Decision, Refusal};

/// Parameters and values only: what a duration's amount may read.
struct StartEnv<'a> {
    params: &'a BTreeMap<String, Value>,
    values: &'a BTreeMap<String, Value>,
}

impl Env for StartEnv<'_> {
    fn lookup(&self, kind: RefKind, id: &str) -> Option<Value> {
        match kind {
            RefKind::Param => self.params.get(id).cloned(),
            RefKind::Value => self.values.get(id).cloned(),
            _ => None,
        }
    }
}

/// F011: every parameter within its declared range, the bound named.
pub(super) fn check_ranges(policy: &ir::Policy, params: &BTreeMap<String, Value>) -> Result<(), Refusal> {
    for p in &policy.params {
        if let (Some(range), Some(v)) = (&p.range, params.get(&p.id)) {
            if let Some(problem) = range.violation(v) {
                return Err(Refusal::BadParam { param: p.id.clone(), problem: format!("`{v}` {problem}") });
            }
        }
    }
    Ok(())
}

/// The amount of a duration from parameters, as a count (F045 if negative or not whole).
fn count(
    node: &str,
    e: &ir::Expr,
    params: &BTreeMap<String, Value>,
    values: &BTreeMap<String, Value>,
) -> Result<u32, Refusal> {
    let v =
        eval::eval(e, &StartEnv { params, values }).map_err(|err| Refusal::Evaluation { message: err.to_string() })?;
    let bad = |value: String| Refusal::NegativeDuration {
        node: node.to_string(),
        amount: civicflow_dsl::render::expr(e),
        value,
    };
    let i = v.as_i64().ok_or_else(|| bad(v.to_string()))?;
    u32::try_from(i).map_err(|_| bad(i.to_string()))
}

/// F045: every duration amount of the policy is a count of 0 or more.
pub(super) fn check_amounts(
    policy: &ir::Policy,
    params: &BTreeMap<String, Value>,
    values: &BTreeMap<String, Value>,
) -> Result<(), Refusal> {
    for n in &policy.nodes {
        for e in [&n.due_amount, &n.min_amount].into_iter().flatten() {
            count(&n.id, e, params, values)?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
pub(super) enum Which {
    Due,
    Min,
}

impl Decision<'_> {
    /// The span as the node means it: its amount computed from the parameters where it names one.
    pub(super) fn resolved_span(&self, def: &ir::Node, span: ir::Span, which: Which) -> Result<ir::Span, Refusal> {
        let amount = match which {
            Which::Due => &def.due_amount,
            Which::Min => &def.min_amount,
        };
        match amount {
            Some(e) => {
                Ok(ir::Span { amount: count(&def.id, e, &self.state.params, &self.state.values)?, unit: span.unit })
            }
            None => Ok(span),
        }
    }
}
