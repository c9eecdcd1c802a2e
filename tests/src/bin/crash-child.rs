//! The child process of the crash test (`tests/it/crash.rs`): runs the engine on a SQLite store
//! under load until it is killed.
//!
//! `crash-child <database file>` opens the store (WAL, `synchronous=FULL`), publishes
//! [`POLICY`], and then runs, concurrently and without end:
//!
//! - [`WORKERS`] client tasks, each starting instances `w<k>-<n>` and approving the first
//!   `n % 4` of their three steps through the runtime and its group committer; after each
//!   acknowledged command it prints `ACK <instance> <version>` and flushes stdout;
//! - a task moving the simulated clock forward an hour every few milliseconds, so deadlines pass
//!   while instances wait;
//! - two timer services (two runtimes, as two nodes would) claiming and firing due timers; with
//!   the clock racing, their leases expire and they take timers over from each other, so fences
//!   are exercised.
//!
//! The parent kills it with SIGKILL at an arbitrary moment and checks the database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use civicflow_engine::calendar::Calendar;
use civicflow_engine::clock::{Clock, SimulatedClock};
use civicflow_engine::core::{Action, Actor};
use civicflow_engine::runtime::Runtime;
use civicflow_engine::store::sqlite::SqliteStore;
use civicflow_engine::store::{GroupCommitConfig, GroupCommitter, Store};

/// Three approvals in a row, each with a deadline in calendar days and an escalation on breach.
const POLICY: &str = r#"
policy crash_test {
  timezone "Asia/Shanghai"
  role 窗口
  role 科室
  role 监察
  step 受理: approval {
    by 窗口
    due 1 days
    on breach escalate 监察
  }
  step 审核: approval {
    by 科室
    after 受理
    due 2 days
    on breach escalate 监察
  }
  step 批复: approval {
    by 科室
    after 审核
    due 3 days
    on breach escalate 监察
  }
}"#;

/// Where the simulated clock starts: Monday 2025-03-03, 09:00 in Beijing.
const START: &str = "2025-03-03T01:00:00Z";

const WORKERS: usize = 8;

/// The steps in order, with the role that approves each.
const STEPS: [(&str, &str); 3] = [("受理", "窗口"), ("审核", "科室"), ("批复", "科室")];

fn actor(role: &str) -> Actor {
    Actor { principal: format!("{role}-1"), office: role.into(), role: role.into() }
}

fn ack(instance: &str, version: u64) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ACK {instance} {version}").unwrap();
    out.flush().unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = std::env::args().nth(1).expect("usage: crash-child <database file>");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await.unwrap());
    let (committer, _task) = GroupCommitter::spawn(store.clone(), GroupCommitConfig::default());
    let start: DateTime<Utc> = DateTime::parse_from_rfc3339(START).unwrap().with_timezone(&Utc);
    let clock = Arc::new(SimulatedClock::new(start));
    let calendar = Arc::new(Calendar::chinese().unwrap());
    let node = |name: &str| {
        Arc::new(Runtime::new(store.clone(), committer.clone(), clock.clone(), calendar.clone(), name.into()))
    };
    let rt = node("child-a");
    rt.publish(POLICY).await.unwrap();

    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0u64.. {
                let id = format!("w{w}-{n}");
                match rt.start(&id, "crash_test", None, &actor("窗口"), BTreeMap::new(), None).await {
                    Ok(o) => ack(&id, o.version),
                    Err(e) => {
                        eprintln!("crash-child: start {id}: {e}");
                        continue;
                    }
                }
                for (step, role) in STEPS.iter().take((n % 4) as usize) {
                    match rt.act(&id, &actor(role), step, Action::Approve { comment: None }, None, None).await {
                        Ok(o) => ack(&id, o.version),
                        Err(e) => {
                            eprintln!("crash-child: approve {id} {step}: {e}");
                            break;
                        }
                    }
                }
            }
        }));
    }
    let ticking = clock.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let next = ticking.now() + TimeDelta::hours(1);
            ticking.advance_to(next).unwrap();
        }
    }));
    for name in ["child-timer-a", "child-timer-b"] {
        let rt = node(name);
        tasks.push(tokio::spawn(async move {
            loop {
                match rt.fire_due(32, Duration::from_secs(30)).await {
                    Ok(0) => tokio::time::sleep(Duration::from_millis(2)).await,
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("crash-child: timers: {e}");
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
