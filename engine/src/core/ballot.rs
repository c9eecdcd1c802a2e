//! R2.12, R2.17, R2.20: the candidates on the ballot are exactly the names approved on the final
//! list (`ballot 确定正式候选人.正式候选人名单`), never names typed in with the counts.

use std::collections::BTreeSet;

use civicflow_dsl::eval::{self, Env};
use civicflow_dsl::ir;
use civicflow_dsl::value::Value;

use super::{Refusal, VoteCounts};

/// Refuses tallies whose candidate names differ from the approved list (F046), naming each.
pub(super) fn check(key: &str, rules: &ir::VoteRules, counts: &VoteCounts, base: &dyn Env) -> Result<(), Refusal> {
    let Some(list) = &rules.ballot else { return Ok(()) };
    let approved = match eval::eval(list, base) {
        Ok(Value::List(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::Text(t) => Ok(t),
                other => Err(Refusal::Evaluation { message: format!("a ballot name is `{other}`, not a text") }),
            })
            .collect::<Result<Vec<String>, Refusal>>()?,
        Ok(other) => return Err(Refusal::Evaluation { message: format!("the ballot is `{other}`, not a list") }),
        Err(e) => return Err(Refusal::Evaluation { message: e.to_string() }),
    };
    let approved_set: BTreeSet<&str> = approved.iter().map(String::as_str).collect();
    let entered: BTreeSet<&str> = counts.tallies.iter().map(|t| t.candidate.as_str()).collect();
    let extra: Vec<String> =
        counts.tallies.iter().map(|t| t.candidate.clone()).filter(|c| !approved_set.contains(c.as_str())).collect();
    let missing: Vec<String> = approved.iter().filter(|c| !entered.contains(c.as_str())).cloned().collect();
    if extra.is_empty() && missing.is_empty() {
        return Ok(());
    }
    Err(Refusal::BallotNotApproved { node: key.into(), list: civicflow_dsl::render::expr(list), extra, missing })
}
