//! `civicflow migrate plan|apply|show` (issue 11.5): migration plans on a database, as
//! `POST /v1/migrations` makes and applies them. `plan` computes and stores a plan and prints it
//! for review (nothing changes); `apply ID` moves the instances the plan accepted, each in a
//! commit of its own, showing its progress, and can be run again to resume; `show ID` prints a
//! stored plan again. A server running on the same database sees the moved instances at once
//! (its cached copies are refused by their version and read again).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use civicflow_engine::calendar::Calendar;
use civicflow_engine::clock::{Clock, SimulatedClock, SystemClock};
use civicflow_engine::core::Actor;
use civicflow_engine::runtime::{MigrationPlan, Runtime, RuntimeError};
use civicflow_engine::store::{GroupCommitConfig, GroupCommitter, Store};

use crate::http::auth::ADMIN_ROLE;

/// Who plans and applies from the command line, as the history records it.
const BY: &str = "civicflow migrate";

/// `POLICY@VERSION` split in two.
fn policy_at(text: &str, flag: &str) -> Result<(String, String), String> {
    match text.rsplit_once('@') {
        Some((policy, version)) if !policy.is_empty() && !version.is_empty() => {
            Ok((policy.to_string(), version.to_string()))
        }
        _ => Err(format!(
            "--{flag} takes POLICY@VERSION (a hash, a prefix of 8 or more digits, or a label), not `{text}`"
        )),
    }
}

/// `OLD=NEW` pairs.
fn renames(pairs: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in pairs {
        match pair.split_once('=') {
            Some((old, new)) if !old.trim().is_empty() && !new.trim().is_empty() => {
                if out.insert(old.trim().to_string(), new.trim().to_string()).is_some() {
                    return Err(format!("`{}` is renamed twice", old.trim()));
                }
            }
            _ => return Err(format!("--rename takes OLD=NEW (step ids), not `{pair}`")),
        }
    }
    Ok(out)
}

/// `civicflow migrate plan --from P@V --to P@V [--rename OLD=NEW]… [--json]`.
pub fn plan(from: &str, to: &str, rename: &[String], json: bool, database: &str) -> ExitCode {
    let parsed = policy_at(from, "from").and_then(|f| policy_at(to, "to").map(|t| (f, t))).and_then(|(f, t)| {
        if f.0 != t.0 {
            return Err(format!(
                "--from and --to name two policies (`{}`, `{}`); a plan moves one policy's instances",
                f.0, t.0
            ));
        }
        renames(rename).map(|r| (f, t, r))
    });
    let ((policy, from), (_, to), renames) = match parsed {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    with_runtime(database, |rt| async move {
        let made = rt
            .plan_migration(&policy, &from, &to, renames, BY, |done, total| {
                progress("planned", done, total);
            })
            .await;
        match made {
            Ok(plan) => {
                print_plan(&plan, json);
                let (_, refused) = plan.counts();
                eprintln!(
                    "stored as {}; review it, then `civicflow migrate apply {}`{}",
                    plan.id,
                    plan.id,
                    if refused > 0 { " (the refused instances stay on their version)" } else { "" }
                );
                ExitCode::SUCCESS
            }
            Err(e) => failed(&e),
        }
    })
}

/// `civicflow migrate show ID [--json]`.
pub fn show(id: &str, json: bool, database: &str) -> ExitCode {
    let id = id.to_string();
    with_runtime(database, |rt| async move {
        match rt.migration_plan(&id).await {
            Ok(plan) => {
                print_plan(&plan, json);
                ExitCode::SUCCESS
            }
            Err(e) => failed(&e),
        }
    })
}

/// `civicflow migrate apply ID [--json]`: exit 1 when an instance the plan moves was refused as
/// it is now.
pub fn apply(id: &str, json: bool, database: &str) -> ExitCode {
    let id = id.to_string();
    with_runtime(database, |rt| async move {
        let planned_refusals = match rt.migration_plan(&id).await {
            Ok(plan) => plan.counts().1,
            Err(e) => return failed(&e),
        };
        match rt.apply_migration(&id, BY, |done, total| progress("applied", done, total)).await {
            Ok(report) => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
                } else {
                    println!("plan {}", report.plan);
                    println!("moved now: {}", list(&report.migrated));
                    println!("moved before (resumed): {}", list(&report.already));
                    println!("no longer running on the old version: {}", list(&report.gone));
                    for r in &report.refused {
                        println!("refused: {} — {} {}", r.id, r.code, r.reason);
                    }
                }
                if report.refused.len() > planned_refusals {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("the application stopped; run it again to resume");
                failed(&e)
            }
        }
    })
}

fn list(ids: &[String]) -> String {
    if ids.is_empty() {
        "none".to_string()
    } else {
        format!("{} ({})", ids.len(), ids.join(", "))
    }
}

fn print_plan(plan: &MigrationPlan, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(plan).unwrap_or_default());
    } else {
        print!("{}", plan.text());
    }
}

/// `planned 10/50` on standard error, rewritten in place on a terminal.
fn progress(what: &str, done: u64, total: u64) {
    use std::io::IsTerminal;
    let mut err = std::io::stderr();
    if err.is_terminal() {
        let _ = write!(err, "\r{what} {done}/{total}");
        if done == total {
            let _ = writeln!(err);
        }
    } else if done == total || (done > 0 && done.is_multiple_of(100)) {
        let _ = writeln!(err, "{what} {done}/{total}");
    }
}

fn failed(e: &RuntimeError) -> ExitCode {
    eprintln!("error[{}]: {e}", e.code());
    ExitCode::from(1)
}

/// A runtime on `database`: its simulated clock if it runs on one, and the calendar years added
/// to it.
fn with_runtime<F, Fut>(database: &str, command: F) -> ExitCode
where
    F: FnOnce(Arc<Runtime>) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    crate::cli::with_store(database, |store: Arc<dyn Store>| async move {
        let calendar = match Calendar::chinese() {
            Ok(c) => Arc::new(c),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let clock: Arc<dyn Clock> = match store.simulated_clock().await {
            Ok(Some(at)) => Arc::new(SimulatedClock::new(at)),
            Ok(None) => Arc::new(SystemClock),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let (committer, task) = GroupCommitter::spawn(store.clone(), GroupCommitConfig::default());
        let rt = Arc::new(Runtime::new(store, committer, clock, calendar, "migrate".into()));
        let actor = Actor { principal: BY.into(), office: String::new(), role: ADMIN_ROLE.into() };
        if let Err(e) = rt.load_calendar_years(&actor).await {
            return failed(&e);
        }
        let code = command(rt.clone()).await;
        drop(rt);
        let _ = task.await;
        code
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_renames_are_read_with_their_mistakes_named() {
        assert_eq!(policy_at("election@2012.1", "from"), Ok(("election".into(), "2012.1".into())));
        assert_eq!(
            policy_at("election", "from"),
            Err("--from takes POLICY@VERSION (a hash, a prefix of 8 or more digits, or a label), not `election`".into())
        );
        let pairs = ["选前准备/集中培训=选前准备/业务培训".to_string()];
        assert_eq!(
            renames(&pairs),
            Ok(BTreeMap::from([("选前准备/集中培训".to_string(), "选前准备/业务培训".to_string())]))
        );
        assert_eq!(renames(&["甲".to_string()]), Err("--rename takes OLD=NEW (step ids), not `甲`".into()));
        assert_eq!(renames(&["甲=乙".to_string(), "甲=丙".to_string()]), Err("`甲` is renamed twice".into()));
    }
}
