//! Crash test: a process running the engine on SQLite (WAL, `synchronous=FULL`) is killed with
//! SIGKILL under load; what it acknowledged must be in the database, every chain must verify,
//! every snapshot must be the replay of its events, and every due timer must fire exactly once
//! after a restart.
//!
//! The child is the `crash-child` binary of this crate (`src/bin/crash-child.rs`). It prints
//! `ACK <instance> <version>` after each command the runtime acknowledged. This test reads those
//! lines for about 1.5 s, kills the child (`Child::kill` sends SIGKILL), reopens the database in
//! this process and checks it.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use civicflow_engine::calendar::Calendar;
use civicflow_engine::clock::SimulatedClock;
use civicflow_engine::core::{Event, NodeStatus, State};
use civicflow_engine::runtime::{replay_stored, Runtime};
use civicflow_engine::store::sqlite::SqliteStore;
use civicflow_engine::store::{
    GroupCommitConfig, GroupCommitter, InstanceFilter, InstanceRecord, Store, MAX_PAGE_SIZE,
};

/// How long the child runs after its first acknowledgement before it is killed.
const RUN_FOR: Duration = Duration::from_millis(1500);
/// The most the test waits for the child to start acknowledging (a slow, loaded machine).
const START_WITHIN: Duration = Duration::from_secs(60);

#[test]
fn acknowledged_commands_survive_sigkill_and_timers_fire_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("civicflow.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-child"))
        .arg(&db)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();

    // A thread reads the child's stdout; only complete lines count (the kill may cut one).
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line.ends_with('\n') => {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
                Ok(_) => break,
            }
        }
    });

    let started = Instant::now();
    let mut first_ack: Option<Instant> = None;
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(line) => {
                first_ack.get_or_insert_with(Instant::now);
                lines.push(line);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                panic!("the child stopped on its own after {} lines: {:?}", lines.len(), child.try_wait())
            }
        }
        match first_ack {
            Some(at) if at.elapsed() >= RUN_FOR => break,
            None if started.elapsed() > START_WITHIN => {
                let _ = child.kill();
                panic!("the child acknowledged nothing in {START_WITHIN:?}");
            }
            _ => {}
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed: {status:?}");
    reader.join().unwrap();
    // Lines the child printed before it died were acknowledged too.
    lines.extend(rx.try_iter());

    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    for line in &lines {
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("ACK"), "unexpected line from the child: {line:?}");
        let instance = words.next().unwrap().to_string();
        let version: u64 = words.next().unwrap().parse().unwrap();
        let v = acked.entry(instance).or_default();
        *v = (*v).max(version);
    }
    assert!(!acked.is_empty());

    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(check(
        &db,
        lines.len(),
        &acked,
    ));
}

async fn check(db: &std::path::Path, acks: usize, acked: &BTreeMap<String, u64>) {
    let sqlite = SqliteStore::open(db).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(sqlite.clone());

    // 1. Everything acknowledged is there, with every event up to it.
    let mut ahead = 0;
    for (id, &version) in acked {
        let record = store.load_instance(id).await.unwrap().unwrap_or_else(|| panic!("acknowledged `{id}` is lost"));
        assert!(record.version >= version, "`{id}` was acknowledged at {version}, stored at {}", record.version);
        ahead += usize::from(record.version > version);
        let events = store.events(id, 0, u32::MAX).await.unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=record.version).collect::<Vec<_>>(), "the log of `{id}`");
    }

    // 2. Every instance (acknowledged or not) verifies and its snapshot is its replay.
    let instances = all_instances(&*store).await;
    assert!(instances.len() >= acked.len());
    let mut latest_event = DateTime::<Utc>::MIN_UTC;
    let mut latest_due = DateTime::<Utc>::MIN_UTC;
    for record in &instances {
        let (state, events_at) = check_instance(&*store, record).await;
        latest_event = latest_event.max(events_at);
        if let Some(due) = state.nodes.values().filter_map(|n| n.due_at).max() {
            latest_due = latest_due.max(due);
        }
    }
    let fired_before = fired_due_timers(&sqlite).await.values().sum::<i64>();

    // 3. Restart: a clock past every deadline, the timer service run twice.
    let now = latest_event.max(latest_due) + TimeDelta::days(1);
    let clock = Arc::new(SimulatedClock::new(now));
    let (committer, _task) = GroupCommitter::spawn(store.clone(), GroupCommitConfig::default());
    let calendar = Arc::new(Calendar::chinese().unwrap());
    let rt = Arc::new(Runtime::new(store.clone(), committer, clock, calendar, "restarted".into()));
    let fired = rt.fire_all_due().await.unwrap();
    assert_eq!(rt.fire_all_due().await.unwrap(), 0, "a second run fires nothing");

    // 4. Every due timer fired exactly once: each open step is overdue with one `overdue` and
    //    one `escalated` event, no step has more, each breach has exactly one fired timer row,
    //    and nothing due is left pending or claimed.
    let fired_rows = fired_due_timers(&sqlite).await;
    let mut breaches: HashMap<(String, String), i64> = HashMap::new();
    let mut open_overdue = 0;
    for record in &instances {
        let (state, _) = check_instance(&*store, &store.load_instance(&record.id).await.unwrap().unwrap()).await;
        let events = store.events(&record.id, 0, u32::MAX).await.unwrap();
        let mut overdue: HashMap<String, i64> = HashMap::new();
        let mut escalated: HashMap<String, i64> = HashMap::new();
        for e in &events {
            let event: Event = serde_json::from_value((*e.payload).clone()).unwrap();
            match event {
                Event::Overdue { node, due_at } => {
                    assert!(e.at == due_at, "`{}`: the breach of {node} is recorded at its deadline", record.id);
                    *overdue.entry(node).or_default() += 1;
                }
                Event::Escalated { node, .. } => *escalated.entry(node).or_default() += 1,
                _ => {}
            }
        }
        assert_eq!(overdue, escalated, "`{}`: one escalation per breach", record.id);
        for (node, n) in &state.nodes {
            let count = overdue.get(node).copied().unwrap_or(0);
            assert!(count <= 1, "`{}`: {node} breached {count} times", record.id);
            if n.status == NodeStatus::Open && n.due_at.is_some_and(|d| d <= now) {
                assert_eq!(count, 1, "`{}`: {node} is open past its deadline without one breach", record.id);
                open_overdue += 1;
            }
        }
        for (node, count) in overdue {
            breaches.insert((record.id.clone(), node), count);
        }
        let left: Vec<_> =
            store.pending_timers(&record.id).await.unwrap().into_iter().filter(|t| t.due_at <= now).collect();
        assert!(left.is_empty(), "`{}`: due timers left after the restart: {left:?}", record.id);
    }
    assert_eq!(fired_rows, breaches, "one fired timer row per breach");

    eprintln!(
        "crash test: {acks} acks for {} instances ({ahead} stored beyond their last ack: a timer fired, or the \
         kill cut an answer off); {} instances stored; {fired_before} timers fired before the kill, {fired} after \
         the restart; {open_overdue} open steps overdue",
        acked.len(),
        instances.len(),
    );
    sqlite.close().await;
}

/// Verifies the chain of one instance and checks that its snapshot is the replay of its events;
/// returns the state and the time of its last event.
async fn check_instance(store: &dyn Store, record: &InstanceRecord) -> (State, DateTime<Utc>) {
    let id = &record.id;
    assert_eq!(store.verify(id).await.unwrap(), record.version, "the chain of `{id}`");
    let events = store.events(id, 0, u32::MAX).await.unwrap();
    let replayed = replay_stored(&events).unwrap();
    let snapshot: State = serde_json::from_value(record.snapshot.clone()).unwrap();
    assert_eq!(snapshot, replayed, "the snapshot of `{id}` is the replay of its events");
    assert_eq!(snapshot.version, record.version);
    (snapshot, events.last().map_or(record.created_at, |e| e.at))
}

async fn all_instances(store: &dyn Store) -> Vec<InstanceRecord> {
    let mut out = Vec::new();
    for page in 1.. {
        let filter = InstanceFilter { page, page_size: MAX_PAGE_SIZE, ..InstanceFilter::default() };
        let got = store.list_instances(&filter).await.unwrap();
        let done = got.items.len() < MAX_PAGE_SIZE as usize;
        out.extend(got.items);
        if done {
            break;
        }
    }
    out
}

/// Fired deadline timers per (instance, node), counted in the database.
async fn fired_due_timers(store: &SqliteStore) -> HashMap<(String, String), i64> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT instance, node, COUNT(*) FROM timers WHERE state = 'fired' AND kind = 'due' GROUP BY instance, node",
    )
    .fetch_all(store.reader_pool())
    .await
    .unwrap();
    rows.into_iter().map(|(i, n, c)| ((i, n), c)).collect()
}
