//! Issue 9 (prove): three node processes (`src/bin/timer-node.rs`) share one PostgreSQL schema
//! and fire the same due timers.
//!
//! - One is killed with SIGKILL while it holds leases on 10,000 due timers: every timer fires
//!   exactly once (one `overdue` event per instance, no timer left), and the timers it held are
//!   taken over by the others once their lease ends.
//! - One is stopped with SIGSTOP while it holds leases and resumed after the others took them
//!   over: the commits it then makes for them are refused by the fence, so the fires counted by
//!   the three nodes add up to exactly the number of timers, and nothing fires twice.
//!
//! The instances are started by this process on a simulated clock in 2025, so their deadlines
//! are long past by the database's clock, which the nodes claim by.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use civicflow_engine::calendar::Calendar;
use civicflow_engine::clock::SimulatedClock;
use civicflow_engine::core::Actor;
use civicflow_engine::runtime::Runtime;
use civicflow_engine::store::postgres::PgStore;
use civicflow_engine::store::{GroupCommitConfig, GroupCommitter, Store};
use sqlx::PgPool;

use crate::pg;

/// One approval due in one calendar day: one deadline timer per instance.
const POLICY: &str = r#"
policy 到期 {
  timezone "Asia/Shanghai"
  role 窗口
  step 受理: approval { by 窗口 due 1 days }
}"#;

/// How long a node's claim on a timer lasts.
const LEASE_MS: u64 = 2_000;

/// A node process and the fires it reported.
struct Node {
    child: Child,
    fired: Arc<AtomicUsize>,
    ready: std::sync::mpsc::Receiver<()>,
}

impl Node {
    fn spawn(schema: &str, name: &str) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_timer-node"))
            .args([&pg_url(), schema, name, &LEASE_MS.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let fired = Arc::new(AtomicUsize::new(0));
        let (tx, ready) = std::sync::mpsc::channel();
        let counted = fired.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line == "READY" {
                    let _ = tx.send(());
                } else if let Some(n) = line.strip_prefix("FIRED ") {
                    counted.fetch_add(n.parse::<usize>().unwrap(), Ordering::SeqCst);
                }
            }
        });
        Node { child, fired, ready }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill {signal} failed");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pg_url() -> String {
    std::env::var("CIVICFLOW_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Publishes [`POLICY`] and starts `n` instances on 2025-03-03, 32 at a time.
async fn start_instances(store: Arc<dyn Store>, n: usize) {
    let (committer, _task) = GroupCommitter::spawn(store.clone(), GroupCommitConfig::default());
    let clock = Arc::new(SimulatedClock::new(t("2025-03-03T01:00:00Z")));
    let rt = Arc::new(Runtime::new(store, committer, clock, Arc::new(Calendar::chinese().unwrap()), "setup".into()));
    rt.publish(POLICY).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..32 {
        let rt = rt.clone();
        tasks.spawn(async move {
            let actor = Actor { principal: "窗口-李".into(), office: "窗口".into(), role: "窗口".into() };
            for i in (w..n).step_by(32) {
                rt.start(&format!("到期-{i}"), "到期", None, &actor, BTreeMap::new(), None).await.unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
}

/// The timers `node` holds now: `(id, fence)`.
async fn claimed_by(pool: &PgPool, node: &str) -> BTreeMap<i64, i64> {
    sqlx::query_as::<_, (i64, i64)>("SELECT id, fence FROM timers WHERE state = 'claimed' AND lease_owner = $1")
        .bind(node)
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// Waits (at most `within`) until `node` holds at least one lease.
async fn until_holding(pool: &PgPool, node: &str, within: Duration) {
    let start = Instant::now();
    while claimed_by(pool, node).await.is_empty() {
        assert!(start.elapsed() < within, "{node} claimed nothing in {within:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(pool).await.unwrap()
}

/// Waits (at most `within`) until no timer is pending or claimed.
async fn until_all_fired(pool: &PgPool, within: Duration) {
    let start = Instant::now();
    loop {
        let open = count(pool, "SELECT count(*) FROM timers WHERE state IN ('pending', 'claimed')").await;
        if open == 0 {
            return;
        }
        assert!(start.elapsed() < within, "{open} timers still not fired after {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every instance's deadline fired exactly once: one `overdue` event each, every timer fired.
async fn fired_exactly_once(pool: &PgPool, n: usize) {
    assert_eq!(count(pool, "SELECT count(*) FROM events WHERE kind = 'overdue'").await, n as i64);
    assert_eq!(count(pool, "SELECT count(DISTINCT instance) FROM events WHERE kind = 'overdue'").await, n as i64);
    assert_eq!(count(pool, "SELECT count(*) FROM timers WHERE state = 'fired'").await, n as i64);
    assert_eq!(count(pool, "SELECT count(*) FROM timers").await, n as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_while_holding_leases_on_10000_due_timers_loses_none() {
    const TIMERS: usize = 10_000;
    let Some(schema) = pg::fresh_schema("nodes", "nd", "kill").await else { return };
    let store = PgStore::connect_with(schema.options.clone(), 8).await.unwrap();
    start_instances(Arc::new(store.clone()), TIMERS).await;
    let pool = store.pool().clone();
    assert_eq!(count(&pool, "SELECT count(*) FROM timers WHERE state = 'pending'").await, TIMERS as i64);

    let nodes: Vec<Node> = ["node-1", "node-2", "node-3"].iter().map(|n| Node::spawn(&schema.name, n)).collect();
    for n in &nodes {
        n.ready.recv_timeout(Duration::from_secs(60)).unwrap();
    }
    until_holding(&pool, "node-1", Duration::from_secs(60)).await;
    nodes[0].signal("-KILL");
    let killed = Instant::now();
    let held = claimed_by(&pool, "node-1").await;
    assert!(!held.is_empty(), "node-1 was killed while holding leases");

    // Its timers are taken over by the others once their lease ends, and fired.
    let ids: Vec<i64> = held.keys().copied().collect();
    loop {
        let rows: Vec<(String, Option<String>, i64)> =
            sqlx::query_as("SELECT state, lease_owner, fence FROM timers WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(&pool)
                .await
                .unwrap();
        if rows.iter().all(|(state, _, _)| state == "fired") {
            for (_, owner, _) in &rows {
                assert_ne!(owner.as_deref(), Some("node-1"), "a dead node's timer was fired by another node");
            }
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(120), "the dead node's timers were not taken over");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let takeover = killed.elapsed();
    until_all_fired(&pool, Duration::from_secs(300)).await;
    eprintln!(
        "nodes::kill: {} leases held by the killed node, all fired by the others {:.2} s after the kill (lease {} ms)",
        held.len(),
        takeover.as_secs_f64(),
        LEASE_MS
    );
    drop(nodes);
    fired_exactly_once(&pool, TIMERS).await;
    schema.drop_with(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_past_its_leases_is_fenced_when_it_resumes() {
    const TIMERS: usize = 3_000;
    let Some(schema) = pg::fresh_schema("nodes", "nd", "stop").await else { return };
    let store = PgStore::connect_with(schema.options.clone(), 8).await.unwrap();
    start_instances(Arc::new(store.clone()), TIMERS).await;
    let pool = store.pool().clone();

    let nodes: Vec<Node> = ["node-1", "node-2", "node-3"].iter().map(|n| Node::spawn(&schema.name, n)).collect();
    for n in &nodes {
        n.ready.recv_timeout(Duration::from_secs(60)).unwrap();
    }
    until_holding(&pool, "node-1", Duration::from_secs(60)).await;
    nodes[0].signal("-STOP");
    let stopped = Instant::now();
    let held = claimed_by(&pool, "node-1").await;
    assert!(!held.is_empty(), "node-1 was stopped while holding leases");

    // The others take its timers over once the lease ends (a timer whose row the stopped node
    // holds locked in an unfinished transaction is skipped until it resumes).
    let ids: Vec<i64> = held.keys().copied().collect();
    let taken_over = loop {
        let rows: Vec<(i64, Option<String>, i64)> =
            sqlx::query_as("SELECT id, lease_owner, fence FROM timers WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(&pool)
                .await
                .unwrap();
        let taken: Vec<i64> = rows
            .iter()
            .filter(|(id, owner, fence)| owner.as_deref() != Some("node-1") && *fence > held[id])
            .map(|(id, _, _)| *id)
            .collect();
        if taken.len() == held.len() || stopped.elapsed() > Duration::from_millis(LEASE_MS) + Duration::from_secs(10) {
            break taken;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!taken_over.is_empty(), "the others took over the stopped node's expired leases");
    nodes[0].signal("-CONT");

    // Every timer fires; the resumed node's late commits for the timers taken over are refused
    // by the fence, so the counts of fires the nodes report add up to exactly the timers.
    until_all_fired(&pool, Duration::from_secs(300)).await;
    let start = Instant::now();
    let total = || nodes.iter().map(|n| n.fired.load(Ordering::SeqCst)).sum::<usize>();
    while total() < TIMERS && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The resumed node finishes its round (its stale claims were refused) and reports.
    tokio::time::sleep(Duration::from_millis(LEASE_MS)).await;
    eprintln!(
        "nodes::stop: {} leases held by the stopped node, {} taken over while it was stopped; fires reported {:?}",
        held.len(),
        taken_over.len(),
        nodes.iter().map(|n| n.fired.load(Ordering::SeqCst)).collect::<Vec<_>>()
    );
    assert_eq!(total(), TIMERS, "every timer fired once, counted by the node whose commit landed");
    drop(nodes);
    fired_exactly_once(&pool, TIMERS).await;
    schema.drop_with(store).await;
}
