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
    assert_eq!(refused.code(), "R006");
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
    let event: Event = serde_json::from_value(escalated.payload.clone()).unwrap();
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
    assert_eq!(no_quorum.code(), "R014");
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
