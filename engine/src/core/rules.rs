//! The rules of steps: which actions a kind takes, approval rules (会签, 或签, K of N, fractions,
//! chains), form validation, and vote rules (quorum, slate, election).
//!
//! | kind         | actions                          | done when                               |
//! |--------------|----------------------------------|-----------------------------------------|
//! | task         | submit_form, complete            | form meets its rules, or complete       |
//! | meeting      | submit_form                      | the record (form) meets its rules       |
//! | approval     | approve, reject, submit_form     | the approval rule is met or cannot be   |
//! | filing       | file, submit_form                | every listed role has filed (no veto)   |
//! | consultation | give_opinion                     | every listed role has given an opinion  |
//! | publicity    | raise_objection                  | the minimum duration has passed         |
//! | vote         | enter_vote                       | counts entered that meet the rules      |

use std::collections::{BTreeMap, BTreeSet};

use civicflow_dsl::eval::{self, Env};
use civicflow_dsl::ir::{self, ApprovalRule, RefKind, StepKind, Type};
use civicflow_dsl::value::Value;
use num_rational::BigRational;

use super::{Act, Action, Outcome, Refusal, VoteCounts, VoteResult};

/// The actions that do a step of `kind`'s own work.
pub fn kind_actions(kind: StepKind) -> &'static [&'static str] {
    match kind {
        StepKind::Task => &["submit_form", "complete"],
        StepKind::Meeting => &["submit_form"],
        StepKind::Approval => &["approve", "reject", "submit_form"],
        StepKind::Filing => &["file", "submit_form"],
        StepKind::Consultation => &["give_opinion"],
        StepKind::Publicity => &["raise_objection"],
        StepKind::Vote => &["enter_vote"],
    }
}

/// Whether `action` applies to `kind`; if not, the actions that do.
pub fn allowed(kind: StepKind, action: &Action) -> Result<(), Vec<&'static str>> {
    let ok = kind_actions(kind);
    let mut all = ok.to_vec();
    // A filing or a consultation never sends the matter back (issue 8, R2.18).
    if !matches!(kind, StepKind::Filing | StepKind::Consultation) {
        all.push("return_to");
    }
    all.extend(["withdraw", "delegate", "urge"]);
    if ok.contains(&action.name()) {
        Ok(())
    } else {
        Err(all)
    }
}

pub fn check_type(ty: &Type, v: &Value) -> Result<(), String> {
    let ok = match (ty, v) {
        (Type::Int, Value::Number(n)) => n.is_integer(),
        (Type::Decimal, Value::Number(_))
        | (Type::Text, Value::Text(_))
        | (Type::Date, Value::Date(_))
        | (Type::Bool, Value::Bool(_)) => true,
        (Type::Duration, Value::Duration(_)) => true,
        (Type::List { of }, Value::List(items)) => {
            for i in items {
                check_type(of, i)?;
            }
            true
        }
        (Type::Record { fields }, Value::Record(map)) => {
            for (name, fty) in fields {
                let v = map.get(name).ok_or_else(|| format!("missing field `{name}`"))?;
                check_type(fty, v).map_err(|e| format!("{name}: {e}"))?;
            }
            map.keys().all(|k| fields.iter().any(|(n, _)| n == k))
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected {ty}, got `{v}`"))
    }
}

/// Checks a submitted form against the step's fields: every required field present, every value
/// of its type, no unknown field. Returns the data, or (field, problem).
pub fn check_form(def: &ir::Node, data: &BTreeMap<String, Value>) -> Result<BTreeMap<String, Value>, (String, String)> {
    // A step without a form (a meeting with nothing to record) takes an empty record.
    if def.form.is_empty() && !data.is_empty() {
        return Err(("form".into(), "this step has no form".into()));
    }
    if let Some(extra) = data.keys().find(|k| !def.form.iter().any(|f| f.name == **k)) {
        let known: Vec<&str> = def.form.iter().map(|f| f.name.as_str()).collect();
        return Err((extra.clone(), format!("not a field of this form (its fields are {})", known.join(", "))));
    }
    for f in &def.form {
        match data.get(&f.name) {
            Some(v) => check_type(&f.ty, v).map_err(|e| (f.name.clone(), e))?,
            None if f.optional => {}
            None => return Err((f.name.clone(), format!("is required ({})", f.ty))),
        }
    }
    Ok(data.clone())
}

/// The outcome of an approval step given its acts, once it is decided.
pub fn approval_outcome(def: &ir::Node, acts: &[Act]) -> Option<Outcome> {
    let roles = &def.roles;
    let n = roles.len();
    let approved: BTreeSet<&str> =
        acts.iter().filter(|a| a.action == "approve").map(|a| a.actor.role.as_str()).collect();
    let rejected: BTreeSet<&str> =
        acts.iter().filter(|a| a.action == "reject").map(|a| a.actor.role.as_str()).collect();
    let a = approved.len();
    let r = rejected.len();
    let pending = n.saturating_sub(a + r);
    let rule = def.rule.clone().unwrap_or(ApprovalRule::All);
    // `met(x)`: would x approvals satisfy the rule?
    let met = |x: usize| -> bool {
        match &rule {
            ApprovalRule::All | ApprovalRule::Sequence => x >= n,
            ApprovalRule::Any => x >= 1,
            ApprovalRule::AtLeast { k } => x >= *k as usize,
            ApprovalRule::Fraction { strict, num, den } => {
                let share = BigRational::new((x as i64).into(), (n.max(1) as i64).into());
                let bar = BigRational::new(i64::from(*num).into(), i64::from(*den).max(1).into());
                if *strict {
                    share > bar
                } else {
                    share >= bar
                }
            }
        }
    };
    if met(a) {
        Some(Outcome::Approved)
    } else if r > 0
        && (matches!(rule, ApprovalRule::All | ApprovalRule::Sequence | ApprovalRule::Any) || !met(a + pending))
    {
        // A veto under 会签, a chain or 或签; otherwise once the rule can no longer be met.
        Some(Outcome::Rejected)
    } else {
        None
    }
}

/// For a sequence rule: the role whose turn it is.
pub fn next_in_sequence<'a>(def: &'a ir::Node, acts: &[Act]) -> Option<&'a str> {
    def.roles.iter().map(String::as_str).find(|r| !acts.iter().any(|a| a.action == "approve" && a.actor.role == *r))
}

pub fn all_roles_did(def: &ir::Node, acts: &[Act], action: &str) -> bool {
    def.roles.iter().all(|r| acts.iter().any(|a| a.action == action && a.actor.role == *r))
}

fn count(v: u64) -> Value {
    Value::int(i64::try_from(v).unwrap_or(i64::MAX))
}

struct VoteEnv<'a> {
    base: &'a dyn Env,
    vars: BTreeMap<String, Value>,
}

impl Env for VoteEnv<'_> {
    fn lookup(&self, kind: RefKind, id: &str) -> Option<Value> {
        if kind == RefKind::Vote {
            self.vars.get(id).cloned()
        } else {
            self.base.lookup(kind, id)
        }
    }
}

fn holds(e: &ir::Expr, env: &VoteEnv) -> Result<bool, Refusal> {
    match eval::eval(e, env) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err(Refusal::Evaluation { message: format!("a vote rule gave `{other}`, not true or false") }),
        Err(e) => Err(Refusal::Evaluation { message: e.to_string() }),
    }
}

fn references(e: &ir::Expr, name: &str) -> bool {
    serde_json::to_string(e).map(|s| s.contains(&format!("\"id\":\"{name}\""))).unwrap_or(false)
}

/// Decides a vote: checks the counts, the quorum (R2.14, R2.16), the slate (R2.11, R2.12,
/// R2.17), and who is elected (R2.16: more than half of the ballots cast, invalid ones included).
pub fn vote(key: &str, rules: &ir::VoteRules, counts: &VoteCounts, base: &dyn Env) -> Result<VoteResult, Refusal> {
    let as_count = |v: Value, what: &str| -> Result<u64, Refusal> {
        v.as_i64()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| Refusal::Evaluation { message: format!("{what} is `{v}`, not a count") })
    };
    let eligible = as_count(
        eval::eval(&rules.eligible, base).map_err(|e| Refusal::Evaluation { message: e.to_string() })?,
        "eligible",
    )?;
    let seats = match &rules.seats {
        Some(s) => {
            Some(as_count(eval::eval(s, base).map_err(|e| Refusal::Evaluation { message: e.to_string() })?, "seats")?)
        }
        None => None,
    };
    let bad = |detail: String| Refusal::InconsistentCounts { node: key.into(), detail };
    if counts.present > eligible {
        return Err(bad(format!("{} present, but only {eligible} are entitled to vote", counts.present)));
    }
    if counts.cast > counts.present {
        return Err(bad(format!("{} ballots cast by {} present", counts.cast, counts.present)));
    }
    if counts.invalid > counts.cast {
        return Err(bad(format!("{} invalid ballots of {} cast", counts.invalid, counts.cast)));
    }
    let valid = counts.cast - counts.invalid;
    let mut names = BTreeSet::new();
    for t in &counts.tallies {
        if t.candidate.trim().is_empty() || !names.insert(t.candidate.as_str()) {
            return Err(bad(format!("candidate `{}` is empty or listed twice", t.candidate)));
        }
        if t.votes > valid {
            return Err(bad(format!("`{}` has {} votes, more than the {valid} valid ballots", t.candidate, t.votes)));
        }
    }
    let candidates = counts.tallies.len() as u64;
    let mut vars = BTreeMap::from([
        ("eligible".to_string(), count(eligible)),
        ("present".to_string(), count(counts.present)),
        ("cast".to_string(), count(counts.cast)),
        ("invalid".to_string(), count(counts.invalid)),
        ("candidates".to_string(), count(candidates)),
    ]);
    if let Some(s) = seats {
        vars.insert("seats".into(), count(s));
    }
    let env = VoteEnv { base, vars };
    if let Some(q) = &rules.quorum {
        if !holds(q, &env)? {
            let mut detail =
                format!("{} present and {} ballots cast of {eligible} entitled", counts.present, counts.cast);
            for var in ["present", "cast"] {
                if references(q, var) {
                    if let Some(need) = minimum_for(q, &env, var, eligible)? {
                        detail.push_str(&format!(
                            "; at least {need} {} needed",
                            if var == "present" { "present" } else { "ballots" }
                        ));
                    }
                    break;
                }
            }
            return Err(Refusal::QuorumNotMet {
                node: key.into(),
                rule: civicflow_dsl::render::expr(q),
                words: rules.quorum_words.clone(),
                detail,
            });
        }
    }
    if let Some(s) = &rules.slate {
        if !holds(s, &env)? {
            let detail =
                format!("{candidates} candidates for {} seats", seats.map_or("the".to_string(), |s| s.to_string()));
            return Err(Refusal::SlateRule {
                node: key.into(),
                rule: civicflow_dsl::render::expr(s),
                words: rules.slate_words.clone(),
                detail,
            });
        }
    }
    super::ballot::check(key, rules, counts, base)?;
    let mut elected: Vec<(&str, u64, usize)> = Vec::new();
    for (i, t) in counts.tallies.iter().enumerate() {
        let mut vars = env.vars.clone();
        vars.insert("votes".into(), count(t.votes));
        if holds(&rules.elect, &VoteEnv { base, vars })? {
            elected.push((t.candidate.as_str(), t.votes, i));
        }
    }
    // More winners than seats: the most votes win, slate order breaking ties.
    elected.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
    if let Some(s) = seats {
        elected.truncate(usize::try_from(s).unwrap_or(usize::MAX));
    }
    elected.sort_by_key(|e| e.2);
    Ok(VoteResult {
        eligible,
        seats,
        counts: counts.clone(),
        elected: elected.into_iter().map(|e| e.0.to_string()).collect(),
    })
}

/// The smallest value of `var` (others as entered) that meets the rule, by binary search over
/// 0..=eligible; `None` if none does.
fn minimum_for(rule: &ir::Expr, env: &VoteEnv, var: &str, eligible: u64) -> Result<Option<u64>, Refusal> {
    let test = |x: u64| -> Result<bool, Refusal> {
        let mut vars = env.vars.clone();
        vars.insert(var.into(), count(x));
        if var == "present" {
            // Ballots cannot exceed those present: test the rule as if everyone present voted.
            vars.insert("cast".into(), count(x));
        }
        holds(rule, &VoteEnv { base: env.base, vars })
    };
    if !test(eligible)? {
        return Ok(None);
    }
    let (mut lo, mut hi) = (0u64, eligible);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if test(mid)? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(Some(lo))
}
