//! Issue 10.1: the runtime's instance cache. A property test drives two runtimes sharing one
//! SQLite store (so each one's cache goes stale when the other commits) through random
//! approvals, rejections, returns, urges and timer rounds, and checks after every operation:
//!
//! - a state a runtime's cache holds at version v equals the replay of the first v stored
//!   events (what the cache serves is what the history says), and never runs ahead of the store;
//! - the runtime that just committed holds the instance at the store's version;
//! - every instance's chain verifies;
//! - the record the store reads (its snapshot, written every few events, and the events after
//!   it folded in) equals the replay of every stored event (issue 10.1).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

use civicflow_engine::calendar::Calendar;
use civicflow_engine::clock::{Clock, SimulatedClock};
use civicflow_engine::core::{Action, Actor};
use civicflow_engine::runtime::{replay_stored, Runtime, RuntimeError};
use civicflow_engine::store::{GroupCommitConfig, GroupCommitter};

use crate::store::Harness;

const POLICY: &str = r#"
policy 三级审批 {
  timezone "Asia/Shanghai"
  role 科室
  role 监察
  step s0: approval {
    by 科室
    due 2 workdays
    on breach escalate 监察
  }
  step s1: approval {
    by 科室
    after s0
    due 3 workdays
    on breach escalate 监察
  }
  step s2: approval {
    by 科室
    after s1
    due 1 workdays
    on breach escalate 监察
  }
}"#;

const INSTANCES: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    /// Runtime `by` acts on instance `on`'s step `step`.
    Act { by: usize, on: usize, step: usize, what: Verb },
    /// The clock moves `hours` on, and runtime `by` fires what fell due.
    Tick { by: usize, hours: i64 },
}

#[derive(Debug, Clone, Copy)]
enum Verb {
    Approve,
    Reject,
    ReturnToFirst,
    Urge,
}

fn op() -> impl Strategy<Value = Op> {
    let verb = prop_oneof![4 => Just(Verb::Approve), 1 => Just(Verb::Reject), 1 => Just(Verb::ReturnToFirst), 1 => Just(Verb::Urge)];
    prop_oneof![
        5 => (0..2usize, 0..INSTANCES, 0..3usize, verb).prop_map(|(by, on, step, what)| Op::Act { by, on, step, what }),
        1 => (0..2usize, 1..60i64).prop_map(|(by, hours)| Op::Tick { by, hours }),
    ]
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn a_cached_state_is_the_replay_of_the_stored_events() {
    // A fixed seed: a failure reproduces, and CI runs the same cases every time.
    let mut runner = TestRunner::new_with_rng(
        Config { cases: 12, failure_persistence: None, ..Config::default() },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let result = runner.run(&proptest::collection::vec(op(), 10..40), |ops| tokio.block_on(run_case(ops)));
    if let Err(e) = result {
        panic!("{e}");
    }
}

async fn run_case(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let h = Harness::sqlite().await;
    // Monday 2024-05-06 09:00 in Beijing.
    let clock = Arc::new(SimulatedClock::new(t("2024-05-06T01:00:00Z")));
    let calendar = Arc::new(Calendar::chinese().unwrap());
    let mut runtimes = Vec::new();
    let mut tasks = Vec::new();
    for node in ["node-a", "node-b"] {
        let (committer, task) = GroupCommitter::spawn(h.store.clone(), GroupCommitConfig::default());
        runtimes.push(Arc::new(Runtime::new(h.store.clone(), committer, clock.clone(), calendar.clone(), node.into())));
        tasks.push(task);
    }
    runtimes[0].publish(POLICY).await.unwrap();
    let clerk = Actor { principal: "科室-王".into(), office: "科室".into(), role: "科室".into() };
    let ids: Vec<String> = (0..INSTANCES).map(|i| format!("c{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        runtimes[i % 2].start(id, "三级审批", None, &clerk, BTreeMap::new(), None).await.unwrap();
    }
    for op in ops {
        let acted = match op {
            Op::Act { by, on, step, what } => {
                let action = match what {
                    Verb::Approve => Action::Approve { comment: None },
                    Verb::Reject => Action::Reject { reason: "材料不全".into() },
                    Verb::ReturnToFirst => Action::ReturnTo { target: "s0".into(), reason: "重新审查".into() },
                    Verb::Urge => Action::Urge { message: None },
                };
                let rt = &runtimes[by];
                match rt.act(&ids[on], &clerk, &format!("s{step}"), action, None, None).await {
                    Ok(_) | Err(RuntimeError::Refused(_)) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("{op:?}: {e}"))),
                }
                Some((by, on))
            }
            Op::Tick { by, hours } => {
                clock.advance_to(clock.now() + Duration::hours(hours)).unwrap();
                runtimes[by].fire_all_due().await.map_err(|e| TestCaseError::fail(format!("{op:?}: {e}")))?;
                None
            }
        };
        for (i, id) in ids.iter().enumerate() {
            let events = h.store.events(id, 0, 10_000).await.unwrap();
            prop_assert_eq!(h.store.verify(id).await.unwrap(), events.len() as u64);
            // Issue 10.1: the store's record folds the events after its stored snapshot.
            let record = h.store.load_instance(id).await.unwrap().unwrap();
            let read: civicflow_engine::core::State = serde_json::from_value(record.snapshot).unwrap();
            prop_assert_eq!(&read, &replay_stored(&events).unwrap(), "the store reads {} unlike its history", id);
            for (n, rt) in runtimes.iter().enumerate() {
                let Some((record, state)) = rt.cached(id) else { continue };
                let v = record.version as usize;
                prop_assert!(v <= events.len(), "node {n} holds {id} at {v}, ahead of the store's {}", events.len());
                let replayed = replay_stored(&events[..v]).unwrap();
                prop_assert_eq!(&state, &replayed, "node {} serves {} at version {} unlike its history", n, id, v);
                if acted == Some((n, i)) {
                    prop_assert_eq!(v, events.len(), "node {} just acted on {} but holds an older version", n, id);
                }
            }
        }
    }
    let stats: Vec<_> = runtimes.iter().map(|rt| rt.cache_stats()).collect();
    prop_assert!(stats.iter().map(|s| s.hits).sum::<u64>() > 0, "the cache served nothing: {stats:?}");
    drop(runtimes);
    for task in tasks {
        task.await.unwrap();
    }
    h.finish().await;
    Ok(())
}

/// A runtime whose cached copy went stale (the other runtime approved `s0` since) neither
/// refuses the next step on that copy nor commits on it: the refusal is decided again on the
/// store's state, and the approval of `s1` goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_copy_never_refuses_nor_commits() {
    let h = Harness::sqlite().await;
    let clock = Arc::new(SimulatedClock::new(t("2024-05-06T01:00:00Z")));
    let calendar = Arc::new(Calendar::chinese().unwrap());
    let node = |name: &str| {
        let (committer, _task) = GroupCommitter::spawn(h.store.clone(), GroupCommitConfig::default());
        Arc::new(Runtime::new(h.store.clone(), committer, clock.clone(), calendar.clone(), name.into()))
    };
    let (a, b) = (node("node-a"), node("node-b"));
    a.publish(POLICY).await.unwrap();
    let clerk = Actor { principal: "科室-王".into(), office: "科室".into(), role: "科室".into() };
    a.start("c", "三级审批", None, &clerk, BTreeMap::new(), None).await.unwrap();
    assert_eq!(a.cached("c").map(|(r, _)| r.version), Some(2));

    let approve = || Action::Approve { comment: None };
    let by_b = b.act("c", &clerk, "s0", approve(), None, None).await.unwrap();
    assert_eq!((by_b.seqs.clone(), by_b.version), (vec![3, 4, 5], 5), "approved, s0 done, s1 open");
    assert_eq!(a.cached("c").map(|(r, _)| r.version), Some(2), "a's copy is stale");

    let by_a = a.act("c", &clerk, "s1", approve(), None, None).await.unwrap();
    assert_eq!((by_a.seqs.clone(), by_a.version), (vec![6, 7, 8], 8));
    assert_eq!(a.cached("c").map(|(r, _)| r.version), Some(8));
    // A command the store's state allows, decided on a stale copy (b still holds version 5),
    // commits after one lost compare-and-set.
    assert_eq!(b.cached("c").map(|(r, _)| r.version), Some(5));
    let again = b.act("c", &clerk, "s2", approve(), None, None).await.unwrap();
    assert_eq!(again.seqs.first(), Some(&9));
    let events = h.store.events("c", 0, 100).await.unwrap();
    assert_eq!(events.len() as u64, again.version);
    assert_eq!(replay_stored(&events).unwrap(), b.cached("c").unwrap().1);
    h.finish().await;
}

/// Issue 10.4: a command's idempotency key is looked up only when the command fails, since a
/// commit proves its key new (the record is inserted in the same transaction). A retry that
/// would commit again (an urge may be repeated) meets the key in the transaction and gets the
/// first answer; a retry that is refused now (the step is done) gets it too; another body under
/// the key is refused as reused either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_command_gets_its_first_answer_without_a_second_commit() {
    use civicflow_engine::runtime::Idempotency;
    let h = Harness::sqlite().await;
    let clock = Arc::new(SimulatedClock::new(t("2024-05-06T01:00:00Z")));
    let (committer, _task) = GroupCommitter::spawn(h.store.clone(), GroupCommitConfig::default());
    let rt = Runtime::new(h.store.clone(), committer, clock, Arc::new(Calendar::chinese().unwrap()), "n".into());
    let policy = POLICY.replace(
        "    on breach escalate 监察\n  }\n  step s1",
        "    on breach escalate 监察\n    urge by 监察\n  }\n  step s1",
    );
    rt.publish(&policy).await.unwrap();
    let clerk = Actor { principal: "科室-王".into(), office: "科室".into(), role: "科室".into() };
    let inspector = Actor { principal: "监察-李".into(), office: "监察".into(), role: "监察".into() };
    let key = |k: &str, body: &str| Some(Idempotency { key: k.into(), request_hash: body.into() });
    let started = rt.start("c", "三级审批", None, &clerk, BTreeMap::new(), key("start", "b0")).await.unwrap();
    let again = rt.start("c", "三级审批", None, &clerk, BTreeMap::new(), key("start", "b0")).await.unwrap();
    assert_eq!((again.replayed, again.seqs.clone()), (true, started.seqs.clone()));

    let urge = || Action::Urge { message: Some("请尽快".into()) };
    let first = rt.act("c", &inspector, "s0", urge(), None, key("u", "b1")).await.unwrap();
    let retry = rt.act("c", &inspector, "s0", urge(), None, key("u", "b1")).await.unwrap();
    assert_eq!((first.replayed, retry.replayed, retry.seqs.clone()), (false, true, first.seqs.clone()));
    let reused = rt.act("c", &inspector, "s0", urge(), None, key("u", "other")).await;
    assert!(matches!(reused, Err(RuntimeError::KeyReused { .. })), "{reused:?}");

    let approved = rt.act("c", &clerk, "s0", Action::Approve { comment: None }, None, key("a", "b2")).await.unwrap();
    let retried = rt.act("c", &clerk, "s0", Action::Approve { comment: None }, None, key("a", "b2")).await.unwrap();
    assert_eq!((retried.replayed, retried.seqs.clone()), (true, approved.seqs.clone()));
    // One urge and one approval in the history, whatever the retries.
    let kinds: Vec<String> = h.store.events("c", 0, 100).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds.iter().filter(|k| k.as_str() == "urged").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| k.as_str() == "approved" || k.as_str() == "acted").count(), 1, "{kinds:?}");
    h.finish().await;
}
