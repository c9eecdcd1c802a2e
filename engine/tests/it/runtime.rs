//! The durable runtime on both stores: publish, start, act, refuse, fire timers on a simulated
//! clock, replay `as_of`, verify the chain — the same test on SQLite and PostgreSQL.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use civicflow_dsl::value::Value;
use civicflow_engine::calendar::Calendar;
use civicflow_engine::clock::SimulatedClock;
use civicflow_engine::core::{Action, Actor, Event, NodeStatus, Status, Tally, VoteCounts};
use civicflow_engine::runtime::{Idempotency, Runtime, RuntimeError};
use civicflow_engine::store::{GroupCommitConfig, GroupCommitter, StoreError};

use crate::store::Harness;

const POLICY: &str = r#"
policy 换届 {
  role 社区党组织
  role 街道党工委
  param 党员人数: int
  step 资格审查: approval {
    by 街道党工委
    due 3 workdays
    on breach escalate 街道党工委
  }
  step 党员大会: vote {
    by 社区党组织
    after 资格审查
    eligible 党员人数
    quorum present > 4/5 * eligible
    elect votes > 1/2 * cast
  }
}"#;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn actor(role: &str) -> Actor {
    Actor { principal: format!("{role}-张"), office: role.into(), role: role.into() }
}

fn runtime(h: &Harness, clock: Arc<SimulatedClock>) -> (Arc<Runtime>, tokio::task::JoinHandle<()>) {
    let (committer, task) = GroupCommitter::spawn(h.store.clone(), GroupCommitConfig::default());
    let calendar = Arc::new(Calendar::chinese().unwrap());
    (Arc::new(Runtime::new(h.store.clone(), committer, clock, calendar, "node-a".into())), task)
}

fn idem(key: &str, body: &str) -> Option<Idempotency> {
    Some(Idempotency { key: key.into(), request_hash: body.into() })
}

async fn scenario(h: Harness) {
    // Monday 2012-03-26, 09:00 in Beijing.
    let clock = Arc::new(SimulatedClock::new(t("2012-03-26T01:00:00Z")));
    let (rt, _task) = runtime(&h, clock.clone());
    let published = rt.publish(POLICY).await.unwrap();
    let again = rt.publish(POLICY).await.unwrap();
    assert_eq!(published.record.hash, again.record.hash);

    let params = BTreeMap::from([("党员人数".to_string(), Value::int(100))]);
    let leader = actor("街道党工委");
    let first = rt.start("i-1", "换届", None, &leader, params.clone(), idem("k1", "start-100")).await.unwrap();
    assert_eq!(first.seqs, [1, 2]); // started, 资格审查 opened
                                    // The same request again: the first result, nothing new recorded.
    let replay = rt.start("i-1", "换届", None, &leader, params.clone(), idem("k1", "start-100")).await.unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.seqs, [1, 2]);
    let other = rt.start("i-2", "换届", None, &leader, params.clone(), idem("k1", "start-99")).await.unwrap_err();
    assert!(matches!(other, RuntimeError::KeyReused { .. }), "{other:?}");

    // R2.9 entitlement: the community may not approve its own review (403, nothing recorded).
    let refused = rt
        .act("i-1", &actor("社区党组织"), "资格审查", Action::Approve { comment: None }, None, None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "F006");
    assert_eq!(rt.load("i-1").await.unwrap().0.version, 2);

    // The deadline: 3 working days from Monday 03-26 → end of Thursday 03-29 (+08:00).
    let (_, state) = rt.load("i-1").await.unwrap();
    let due = t("2012-03-29T16:00:00Z");
    assert_eq!(state.nodes["资格审查"].due_at, Some(due));
    clock.advance_to(t("2012-03-30T02:00:00Z")).unwrap();
    assert_eq!(rt.fire_all_due().await.unwrap(), 1);
    assert_eq!(rt.fire_all_due().await.unwrap(), 0, "a timer fires once");
    let history = h.store.events("i-1", 0, 100).await.unwrap();
    let kinds: Vec<&str> = history.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["started", "opened", "overdue", "escalated"]);
    // R3.5: recorded at the moment of the breach, carrying the exact deadline.
    let escalated = &history[3];
    assert_eq!(escalated.at, due);
    assert_eq!(escalated.actor, "timer");
    let event: Event = serde_json::from_value((*escalated.payload).clone()).unwrap();
    assert_eq!(event, Event::Escalated { node: "资格审查".into(), role: "街道党工委".into(), due_at: due });

    rt.act("i-1", &leader, "资格审查", Action::Approve { comment: Some("同意".into()) }, None, idem("k2", "approve"))
        .await
        .unwrap();
    let vote = |present: u64| Action::EnterVote {
        counts: VoteCounts {
            present,
            cast: present,
            invalid: 0,
            tallies: vec![Tally { candidate: "甲".into(), votes: present }],
        },
    };
    // R2.14: 80 of 100 is refused and records nothing; 81 is a quorum.
    let before = rt.load("i-1").await.unwrap().0.version;
    let no_quorum = rt.act("i-1", &actor("社区党组织"), "党员大会", vote(80), None, None).await.unwrap_err();
    assert_eq!(no_quorum.code(), "F014");
    assert_eq!(rt.load("i-1").await.unwrap().0.version, before);
    clock.advance_to(t("2012-04-02T02:00:00Z")).unwrap();
    rt.act("i-1", &actor("社区党组织"), "党员大会", vote(81), None, None).await.unwrap();
    let (record, state) = rt.load("i-1").await.unwrap();
    assert_eq!(state.status, Status::Completed);
    assert_eq!(record.status, "completed");

    // as_of: before the vote, the assembly was open and the instance running.
    let earlier = rt.state_as_of("i-1", t("2012-04-01T00:00:00Z")).await.unwrap();
    assert_eq!(earlier.status, Status::Running);
    assert_eq!(earlier.nodes["党员大会"].status, NodeStatus::Open);
    // The snapshot is exactly the replay of the whole history.
    let all = h.store.events("i-1", 0, 1000).await.unwrap();
    assert_eq!(civicflow_engine::runtime::replay_stored(&all).unwrap(), state);

    // The chain verifies; a changed row is found and named.
    assert_eq!(h.store.verify("i-1").await.unwrap(), all.len() as u64);
    h.tamper_payload(
        "i-1",
        4,
        r#"{"event":"escalated","node":"资格审查","role":"区民政局","due_at":"2012-03-29T16:00:00Z"}"#,
    )
    .await;
    match h.store.verify("i-1").await {
        Err(StoreError::ChainBroken(e)) => assert_eq!(e.seq, 4),
        other => panic!("expected a broken chain at seq 4, got {other:?}"),
    }
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_on_sqlite() {
    scenario(Harness::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_on_postgres() {
    if let Some(h) = Harness::postgres("runtime").await {
        scenario(h).await;
    }
}

/// A policy of 20 parallel steps, each with a deadline 1 working day after it opens.
fn twenty_deadlines() -> String {
    let mut s = String::from("policy 二十项 {\n  role 办事处\n  role 领导小组\n");
    for i in 0..20 {
        s.push_str(&format!("  step 事项{i}: task {{ by 办事处 due 1 workdays on breach escalate 领导小组 }}\n"));
    }
    s.push_str("}\n");
    s
}

/// Two runtimes (two nodes, two pools) share one PostgreSQL; 10,000 timers fall due in the same
/// instant; both fire concurrently; every timer fires exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runtimes_sharing_postgres_fire_10000_due_timers_exactly_once() {
    let Some(h) = Harness::postgres("two_runtimes").await else { return };
    let Some(second) = h.second_store().await else { return };
    // Monday 2024-05-06 09:00 in Beijing; every deadline is the end of Tuesday 05-07.
    let clock = Arc::new(SimulatedClock::new(t("2024-05-06T01:00:00Z")));
    let calendar = Arc::new(Calendar::chinese().unwrap());
    let (c1, _t1) = GroupCommitter::spawn(h.store.clone(), GroupCommitConfig::default());
    let (c2, _t2) = GroupCommitter::spawn(second.clone(), GroupCommitConfig::default());
    let a = Arc::new(Runtime::new(h.store.clone(), c1, clock.clone(), calendar.clone(), "node-a".into()));
    let b = Arc::new(Runtime::new(second.clone(), c2, clock.clone(), calendar, "node-b".into()));
    a.publish(&twenty_deadlines()).await.unwrap();
    let leader = actor("领导小组");
    for i in 0..500 {
        a.start(&format!("i-{i:03}"), "二十项", None, &leader, BTreeMap::new(), None).await.unwrap();
    }
    clock.advance_to(t("2024-05-08T01:00:00Z")).unwrap();
    let (fa, fb) = tokio::join!(
        {
            let a = a.clone();
            async move { a.fire_all_due().await.unwrap() }
        },
        {
            let b = b.clone();
            async move { b.fire_all_due().await.unwrap() }
        }
    );
    assert_eq!(fa + fb, 10_000, "node a fired {fa}, node b fired {fb}");
    assert_eq!(a.fire_all_due().await.unwrap() + b.fire_all_due().await.unwrap(), 0);
    let due = t("2024-05-07T16:00:00Z");
    for i in 0..500 {
        let id = format!("i-{i:03}");
        let events = h.store.events(&id, 0, 1000).await.unwrap();
        let overdue: Vec<&str> =
            events.iter().filter(|e| e.kind == "overdue").map(|e| e.payload["node"].as_str().unwrap_or("")).collect();
        assert_eq!(overdue.len(), 20, "{id}");
        let distinct: std::collections::BTreeSet<&str> = overdue.iter().copied().collect();
        assert_eq!(distinct.len(), 20, "{id}: a step overdue twice");
        assert!(events.iter().filter(|e| e.kind == "escalated").all(|e| e.at == due));
        assert_eq!(h.store.verify(&id).await.unwrap(), events.len() as u64);
    }
    h.finish().await;
}
