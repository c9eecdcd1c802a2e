//! What reading instances costs when their stored snapshots lag (issue 10.1).
//!
//! `cargo run --release -p civicflow-engine --example read_fold`: on a fresh SQLite store, 1,000
//! instances of a 20-step chain, each approved 5 times (version 17, stored snapshot at 2: a
//! 15-event tail to fold) and then 6 times (version 20: the snapshot just written, nothing to
//! fold); prints the best of five `list_instances` reads of all 1,000 (two pages of 500), as the
//! inbox reads them.

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::Arc;
use std::time::Instant;

use civicflow_engine::calendar::Calendar;
use civicflow_engine::clock::SimulatedClock;
use civicflow_engine::core::{Action, Actor};
use civicflow_engine::runtime::Runtime;
use civicflow_engine::store::sqlite::SqliteStore;
use civicflow_engine::store::{GroupCommitConfig, GroupCommitter, InstanceFilter, Store};

const CLIENTS: usize = 50;
const PER_CLIENT: usize = 20;

fn chain(steps: usize) -> String {
    let mut src = String::from("policy chain {\n  role 科室\n");
    for i in 0..steps {
        let after = if i > 0 { format!(" after s{}", i - 1) } else { String::new() };
        src.push_str(&format!("  step s{i}: approval {{ by 科室{after} }}\n"));
    }
    src.push('}');
    src
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    for approvals in [5usize, 6] {
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("read_fold.db")).await?);
        let (committer, _task) = GroupCommitter::spawn(store.clone(), GroupCommitConfig::default());
        let clock = Arc::new(SimulatedClock::new(chrono::Utc::now()));
        let rt = Arc::new(Runtime::new(store.clone(), committer, clock, Arc::new(Calendar::chinese()?), "n".into()));
        rt.publish(&chain(20)).await?;
        let clerk = Actor { principal: "科室-王".into(), office: "科室".into(), role: "科室".into() };
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let (rt, clerk) = (rt.clone(), clerk.clone());
            tasks.push(tokio::spawn(async move {
                for k in 0..PER_CLIENT {
                    let id = format!("i{c}-{k}");
                    rt.start(&id, "chain", None, &clerk, BTreeMap::new(), None).await?;
                    for s in 0..approvals {
                        rt.act(&id, &clerk, &format!("s{s}"), Action::Approve { comment: None }, None, None).await?;
                    }
                }
                Ok::<(), civicflow_engine::runtime::RuntimeError>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let mut best = f64::MAX;
        for _ in 0..5 {
            let started = Instant::now();
            for page in 1..=2 {
                let filter = InstanceFilter {
                    status: Some("running".into()),
                    page,
                    page_size: 500,
                    ..InstanceFilter::default()
                };
                let listed = store.list_instances(&filter).await?;
                assert_eq!(listed.items.len(), 500, "every instance is running");
            }
            best = best.min(started.elapsed().as_secs_f64());
        }
        let one = store.load_instance("i0-0").await?.ok_or("no instance i0-0")?;
        println!(
            "{approvals} approvals (version {}, stored snapshot of version {}): 1,000 instances listed in {:.1} ms",
            one.version,
            one.snapshot_version,
            best * 1e3
        );
    }
    Ok(())
}
