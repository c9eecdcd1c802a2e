//! Issue 10.1: the snapshot is a cache written every `SNAPSHOT_EVERY` events (and at an
//! instance's first and last commit); a read folds the events after it. On SQLite and
//! PostgreSQL, a 12-step chain approved step by step: after every approval the record the store
//! returns holds the replay of every stored event, at the store's version, and its stored
//! snapshot is exactly as old as the rule says.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use civicflow_engine::calendar::Calendar;
use civicflow_engine::clock::SimulatedClock;
use civicflow_engine::core::{Action, Actor, State};
use civicflow_engine::runtime::{replay_stored, Runtime};
use civicflow_engine::store::{GroupCommitConfig, GroupCommitter, InstanceFilter, InstanceRecord, SNAPSHOT_EVERY};

use crate::store::Harness;

const STEPS: usize = 12;

fn chain() -> String {
    let mut src = String::from("policy 长链 {\n  role 科室\n");
    for i in 0..STEPS {
        let after = if i > 0 { format!(" after s{}", i - 1) } else { String::new() };
        src.push_str(&format!("  step s{i}: approval {{ by 科室{after} }}\n"));
    }
    src.push('}');
    src
}

async fn a_read_folds_the_events_after_the_stored_snapshot(h: &Harness) {
    assert_eq!(SNAPSHOT_EVERY, 16, "the expected versions below follow from 16");
    let at = DateTime::parse_from_rfc3339("2024-05-06T01:00:00Z").unwrap().with_timezone(&Utc);
    let clock = Arc::new(SimulatedClock::new(at));
    let (committer, task) = GroupCommitter::spawn(h.store.clone(), GroupCommitConfig::default());
    let rt = Runtime::new(h.store.clone(), committer, clock, Arc::new(Calendar::chinese().unwrap()), "n".into());
    rt.publish(&chain()).await.unwrap();
    let clerk = Actor { principal: "科室-王".into(), office: "科室".into(), role: "科室".into() };
    rt.start("c", "长链", None, &clerk, BTreeMap::new(), None).await.unwrap();
    // Started + s0 opened: version 2, the first snapshot. Each approval adds three events
    // (acted, completed, the next step opened).
    let mut seen = Vec::new();
    for i in 0..STEPS {
        rt.act("c", &clerk, &format!("s{i}"), Action::Approve { comment: None }, None, None).await.unwrap();
        let record = h.store.load_instance("c").await.unwrap().unwrap();
        let events = h.store.events("c", 0, 1_000).await.unwrap();
        assert_eq!(record.version, events.len() as u64);
        let folded: State = serde_json::from_value(record.snapshot.clone()).unwrap();
        assert_eq!(folded, replay_stored(&events).unwrap(), "approval {i}: the record is not the replay");
        // Reading several at once and listing fold the same way (one statement for every tail).
        let many = h.store.load_instances(&["c".to_string()]).await.unwrap();
        let filter = InstanceFilter { page: 1, page_size: 10, ..InstanceFilter::default() };
        let page = h.store.list_instances(&filter).await.unwrap();
        assert_eq!((many.len(), page.items.len()), (1, 1));
        for other in many.into_iter().chain(page.items) {
            assert_eq!((other.version, &other.snapshot), (record.version, &record.snapshot), "approval {i}");
        }
        // For commands, the state itself, folded the same way, and the record without its
        // snapshot; an id that does not exist is left out.
        let mut loaded = h.store.load_states(&["c".to_string(), "nope".to_string()]).await.unwrap();
        assert_eq!(loaded.len(), 1);
        let loaded = loaded.remove(0);
        assert_eq!(loaded.state, folded, "approval {i}");
        assert_eq!(loaded.record, InstanceRecord { snapshot: serde_json::Value::Null, ..record.clone() });
        let stored_text: String = h.stored_snapshot_text("c").await;
        assert_eq!(loaded.snapshot_bytes, stored_text.len(), "approval {i}");
        seen.push((record.version, record.snapshot_version));
    }
    assert_eq!(
        seen,
        vec![
            (5, 2),
            (8, 2),
            (11, 2),
            (14, 2),
            (17, 2),
            (20, 20),
            (23, 20),
            (26, 20),
            (29, 20),
            (32, 20),
            (35, 20),
            (38, 38), // the last: acted, completed, instance completed — written, so a closed
                      // instance reads without a fold
        ]
    );
    drop(rt);
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_read_folds_the_events_after_the_stored_snapshot() {
    let h = Harness::sqlite().await;
    a_read_folds_the_events_after_the_stored_snapshot(&h).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_read_folds_the_events_after_the_stored_snapshot() {
    let Some(h) = Harness::postgres("a_read_folds_the_events_after_the_stored_snapshot").await else { return };
    a_read_folds_the_events_after_the_stored_snapshot(&h).await;
    h.finish().await;
}
