//! R0.2: calendar years from outside the build — `civicflow calendar check FILE`,
//! `civicflow calendar add FILE`, and `serve --calendar-dir DIR` at start.
//!
//! A year added here is stored (table `calendar_years`) and every running instance whose deadline
//! waits for it records the change in its own history and gets its timers, through the runtime's
//! `add_calendar_year`, as `POST /v1/admin/calendars` does.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use civicflow_engine::calendar::{self, Calendar, DayKind, YearCalendar};
use civicflow_engine::clock::SystemClock;
use civicflow_engine::core::Actor;
use civicflow_engine::runtime::Runtime;
use civicflow_engine::store::{GroupCommitConfig, GroupCommitter};

use crate::http::auth::ADMIN_ROLE;
use crate::serve::ServeError;

/// The actor recorded for years loaded at start from `--calendar-dir`.
fn dir_actor() -> Actor {
    Actor { principal: "serve --calendar-dir".into(), office: String::new(), role: ADMIN_ROLE.into() }
}

/// At start: the years added earlier (stored), then those of `--calendar-dir` (each stored and
/// applied as if added then).
pub async fn load_at_start(runtime: &Arc<Runtime>, dir: Option<&Path>) -> Result<(), ServeError> {
    let calendar_error = |e: String| ServeError::Calendar(e);
    runtime.load_calendar_years(&dir_actor()).await.map_err(|e| calendar_error(e.to_string()))?;
    let Some(dir) = dir else { return Ok(()) };
    let years = calendar::read_dir(dir).map_err(|e| calendar_error(e.to_string()))?;
    for year in years {
        year.notice_for_adding().map_err(|e| calendar_error(e.to_string()))?;
        let path = dir.join(format!("{}.json", year.year()));
        let body = std::fs::read_to_string(&path).map_err(|e| calendar_error(format!("{}: {e}", path.display())))?;
        let added = runtime
            .add_calendar_year(&body, &path.display().to_string(), &dir_actor())
            .await
            .map_err(|e| calendar_error(e.to_string()))?;
        tracing::info!(
            year = added.year,
            instances = added.instances.len(),
            "calendar year loaded from --calendar-dir"
        );
    }
    Ok(())
}

/// What a year's file holds, for a person: its notice and its days.
pub fn describe(year: &YearCalendar) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "year {}", year.year());
    for (i, n) in year.source().notices.iter().enumerate() {
        let date = n.date.map_or("no date".to_string(), |d| d.to_string());
        let _ = writeln!(out, "notice {}: {} ({date})", i + 1, n.title);
    }
    let holidays = year.entries().filter(|e| e.kind == DayKind::Holiday).count();
    let makeup = year.entries().filter(|e| e.kind == DayKind::MakeupWorkday).count();
    let _ = writeln!(out, "{holidays} holidays, {makeup} make-up working days (调休上班)");
    for e in year.entries() {
        let kind = match e.kind {
            DayKind::Holiday => "holiday",
            DayKind::MakeupWorkday => "make-up working day",
        };
        let _ = writeln!(out, "  {} {} {kind} {}", e.date, e.date.format("%a"), e.name);
    }
    out
}

/// `civicflow calendar check FILE`: 0 and what it holds, or 1 and why not.
pub fn check(path: &Path) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let origin = path.display().to_string();
    let checked = YearCalendar::parse(&text, &origin).and_then(|y| y.notice_for_adding().map(|_| y));
    match checked {
        Ok(year) => {
            print!("{}", describe(&year));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error[{}]: {e}", e.code());
            ExitCode::from(1)
        }
    }
}

/// `civicflow calendar add FILE --database …`: stores the year and computes every deadline that
/// waits for it. A server running on the same database loads the year at its next start.
pub fn add(path: &Path, database: &str) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    crate::cli::with_store(database, |store| async move {
        let calendar = match Calendar::chinese() {
            Ok(c) => Arc::new(c),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let (committer, task) = GroupCommitter::spawn(store.clone(), GroupCommitConfig::default());
        let rt = Runtime::new(store, committer, Arc::new(SystemClock), calendar, "calendar-add".into());
        let actor =
            Actor { principal: "civicflow calendar add".into(), office: String::new(), role: ADMIN_ROLE.into() };
        let code = match async {
            rt.load_calendar_years(&actor).await?;
            rt.add_calendar_year(&text, &path.display().to_string(), &actor).await
        }
        .await
        {
            Ok(added) => {
                println!("added {} ({}, {})", added.year, added.notice.title, added.notice.date);
                if added.instances.is_empty() {
                    println!("no running instance was waiting for {}", added.year);
                } else {
                    println!(
                        "deadlines computed in {} running instance(s): {}",
                        added.instances.len(),
                        added.instances.join(", ")
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error[{}]: {e}", e.code());
                ExitCode::from(1)
            }
        };
        drop(rt);
        let _ = task.await;
        code
    })
}
