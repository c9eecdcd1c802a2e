//! One node of the fault tests of `tests/it/nodes.rs`: a timer service on a PostgreSQL schema
//! shared with other nodes, on the system clock (timers are claimed by the database's clock).
//!
//! `timer-node <postgres url> <schema> <node name> <lease in ms>` claims due timers in batches of
//! 256 under leases of the given length and fires them, without end. After each round that fired
//! something it prints `FIRED <n>` (commits that landed; a timer whose lease another node took
//! over is refused by its fence and not counted) and flushes stdout. It prints `READY` once
//! connected. The parent kills it (SIGKILL) or stops and resumes it (SIGSTOP, SIGCONT).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use civicflow_engine::calendar::Calendar;
use civicflow_engine::clock::SystemClock;
use civicflow_engine::runtime::Runtime;
use civicflow_engine::store::postgres::PgStore;
use civicflow_engine::store::{GroupCommitConfig, GroupCommitter, Store};
use sqlx::postgres::PgConnectOptions;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, schema, node, lease_ms] = args.as_slice() else {
        panic!("usage: timer-node <postgres url> <schema> <node name> <lease in ms>");
    };
    let lease = Duration::from_millis(lease_ms.parse().unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let options = PgConnectOptions::from_str(url).unwrap().options([("search_path", schema.as_str())]);
        let store: Arc<dyn Store> = Arc::new(PgStore::connect_with(options, 8).await.unwrap());
        let (committer, _task) = GroupCommitter::spawn(store.clone(), GroupCommitConfig::default());
        let calendar = Arc::new(Calendar::chinese().unwrap());
        let rt = Arc::new(Runtime::new(store, committer, Arc::new(SystemClock), calendar, node.clone()));
        println!("READY");
        std::io::stdout().flush().unwrap();
        loop {
            let n = rt.fire_due(256, lease).await.unwrap();
            if n > 0 {
                println!("FIRED {n}");
                std::io::stdout().flush().unwrap();
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
}
