//! Issue 9 (prove): an approval and the deadline timer of the same step race, forced in both
//! orders by a hook in the store, not by sleeps. Two nodes share one database; node A's commits
//! go through [`GatedStore`], which holds the next batch until the test lets it go, so node B's
//! command lands in between. Exactly one wins; the other decides again on what the winner
//! committed and is refused (the approval: F003, the instance ended by the rejection) or finds
//! nothing to do (the timer: its timer went with the approved step).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{oneshot, Mutex};

use civicflow_engine::calendar::Calendar;
use civicflow_engine::clock::SimulatedClock;
use civicflow_engine::core::{Action, Actor, NodeStatus, Outcome, Status};
use civicflow_engine::runtime::{Runtime, RuntimeError};
use civicflow_engine::store::*;

use crate::store::Harness;

/// One approval due in 1 working day; past it, the step is closed as rejected, and with it the
/// instance.
const POLICY: &str = r#"
policy 限时审批 {
  timezone "Asia/Shanghai"
  calendar "cn"
  role 审批科
  step 审批: approval { by 审批科 due 1 workdays on breach reject on rejected end }
}"#;

/// A store that holds the next `commit_many` batch while armed: it says so on `arrived`, then
/// waits for `release` before passing the batch on. Everything else goes straight through.
struct GatedStore {
    inner: Arc<dyn Store>,
    gate: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
    /// The instances of each batch, in the order the batches reached `inner`.
    passed: std::sync::Mutex<Vec<Vec<String>>>,
}

impl GatedStore {
    /// Arms the gate for the next batch: the first receiver fires when it arrives, the sender
    /// lets it through.
    async fn arm(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (arrived_tx, arrived_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        *self.gate.lock().await = Some((arrived_tx, release_rx));
        (arrived_rx, release_tx)
    }
}

#[async_trait]
impl Store for GatedStore {
    fn batches_in_flight(&self) -> usize {
        self.inner.batches_in_flight()
    }

    async fn commit_many(&self, commits: Vec<Commit>) -> BatchResults {
        let gate = self.gate.lock().await.take();
        if let Some((arrived, release)) = gate {
            let _ = arrived.send(());
            let _ = release.await;
        }
        self.passed.lock().unwrap().push(commits.iter().map(|c| c.instance.clone()).collect());
        self.inner.commit_many(commits).await
    }

    async fn commit_hints(
        &self,
    ) -> Result<Option<tokio::sync::mpsc::Receiver<civicflow_engine::store::CommitHint>>, StoreError> {
        self.inner.commit_hints().await
    }

    async fn principal_changes(&self) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, StoreError> {
        self.inner.principal_changes().await
    }
    async fn commit(&self, commit: Commit) -> Result<Vec<StoredEvent>, StoreError> {
        let (mut results, _) = self.commit_many(vec![commit]).await;
        results.pop().unwrap_or(Err(StoreError::Closed))
    }
    async fn publish_policy(&self, policy: PolicyRecord) -> Result<Published, StoreError> {
        self.inner.publish_policy(policy).await
    }
    async fn get_policy(&self, name: &str, hash: Option<&str>) -> Result<Option<PolicyRecord>, StoreError> {
        self.inner.get_policy(name, hash).await
    }
    async fn load_states(&self, ids: &[String]) -> Result<Vec<civicflow_engine::store::LoadedState>, StoreError> {
        self.inner.load_states(ids).await
    }
    async fn latest_policy_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.inner.latest_policy_hash(name).await
    }
    async fn list_policies(&self) -> Result<Vec<PolicyRecord>, StoreError> {
        self.inner.list_policies().await
    }
    async fn policy_versions(&self, name: &str) -> Result<Vec<PolicyRecord>, StoreError> {
        self.inner.policy_versions(name).await
    }
    async fn create_instance(&self, instance: InstanceRecord, first: Commit) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.create_instance(instance, first).await
    }
    async fn load_instance(&self, id: &str) -> Result<Option<InstanceRecord>, StoreError> {
        self.inner.load_instance(id).await
    }
    async fn load_instances(&self, ids: &[String]) -> Result<Vec<InstanceRecord>, StoreError> {
        self.inner.load_instances(ids).await
    }
    async fn list_instances(&self, filter: &InstanceFilter) -> Result<Page<InstanceRecord>, StoreError> {
        self.inner.list_instances(filter).await
    }
    async fn inbox(&self, query: &InboxQuery) -> Result<Page<OpenStepRef>, StoreError> {
        self.inner.inbox(query).await
    }
    async fn open_steps_built(&self) -> Result<bool, StoreError> {
        self.inner.open_steps_built().await
    }
    async fn put_open_steps(&self, instance: &str, version: u64, rows: &[OpenStepRow]) -> Result<bool, StoreError> {
        self.inner.put_open_steps(instance, version, rows).await
    }
    async fn mark_open_steps_built(&self) -> Result<(), StoreError> {
        self.inner.mark_open_steps_built().await
    }
    async fn events(&self, instance: &str, after_seq: u64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.events(instance, after_seq, limit).await
    }
    async fn events_until(&self, instance: &str, at: DateTime<Utc>) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.events_until(instance, at).await
    }
    async fn get_idempotency(&self, principal: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.get_idempotency(principal, key).await
    }
    async fn next_timer_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.inner.next_timer_at().await
    }
    async fn claim_due_timers(
        &self,
        owner: &str,
        now: Option<DateTime<Utc>>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<TimerRecord>, StoreError> {
        self.inner.claim_due_timers(owner, now, lease, limit).await
    }
    async fn pending_timers(&self, instance: &str) -> Result<Vec<TimerRecord>, StoreError> {
        self.inner.pending_timers(instance).await
    }
    async fn verify(&self, instance: &str) -> Result<u64, StoreError> {
        self.inner.verify(instance).await
    }
    async fn create_token(
        &self,
        principal: PrincipalRecord,
        token_hash: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.inner.create_token(principal, token_hash, expires_at).await
    }
    async fn principal_by_token_hash(&self, token_hash: &str) -> Result<Option<PrincipalRecord>, StoreError> {
        self.inner.principal_by_token_hash(token_hash).await
    }
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.inner.list_tokens().await
    }
    async fn revoke_tokens(&self, principal: &str, id: Option<&str>) -> Result<u64, StoreError> {
        self.inner.revoke_tokens(principal, id).await
    }
    async fn list_principals(&self) -> Result<Vec<PrincipalRecord>, StoreError> {
        self.inner.list_principals().await
    }
    async fn put_session(&self, session: SessionRecord, cap: usize) -> Result<(), StoreError> {
        self.inner.put_session(session, cap).await
    }
    async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.get_session(id_hash).await
    }
    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        self.inner.delete_session(id_hash).await
    }
    async fn advance_simulated_clock(&self, to: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
        self.inner.advance_simulated_clock(to).await
    }
    async fn simulated_clock(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.inner.simulated_clock().await
    }
    async fn put_idempotency(&self, record: IdempotencyRecord) -> Result<(), StoreError> {
        self.inner.put_idempotency(record).await
    }
    async fn counter(&self, key: &str) -> Result<u64, StoreError> {
        self.inner.counter(key).await
    }
    async fn put_calendar_year(&self, year: CalendarYearRecord) -> Result<(), StoreError> {
        self.inner.put_calendar_year(year).await
    }
    async fn calendar_years(&self) -> Result<Vec<CalendarYearRecord>, StoreError> {
        self.inner.calendar_years().await
    }
    async fn put_migration_plan(&self, plan: MigrationPlanRecord) -> Result<(), StoreError> {
        self.inner.put_migration_plan(plan).await
    }
    async fn migration_plan(&self, id: &str) -> Result<Option<MigrationPlanRecord>, StoreError> {
        self.inner.migration_plan(id).await
    }
    async fn backfill_audit_log(&self, limit: u32) -> Result<u64, StoreError> {
        self.inner.backfill_audit_log(limit).await
    }
    async fn audit_tree(&self) -> Result<AuditTree, StoreError> {
        self.inner.audit_tree().await
    }
    async fn audit_leaves(&self, from: u64, limit: u32) -> Result<Vec<AuditLeaf>, StoreError> {
        self.inner.audit_leaves(from, limit).await
    }
    async fn audit_entries(&self, from: u64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        self.inner.audit_entries(from, limit).await
    }
    async fn audit_leaves_of(&self, instance: &str) -> Result<Vec<AuditLeaf>, StoreError> {
        self.inner.audit_leaves_of(instance).await
    }
    async fn event_leaf_indexes(&self, instance: &str) -> Result<Vec<(u64, Option<u64>)>, StoreError> {
        self.inner.event_leaf_indexes(instance).await
    }
    async fn put_audit_checkpoint(&self, checkpoint: AuditCheckpointRecord) -> Result<bool, StoreError> {
        self.inner.put_audit_checkpoint(checkpoint).await
    }
    async fn latest_audit_checkpoint(&self) -> Result<Option<AuditCheckpointRecord>, StoreError> {
        self.inner.latest_audit_checkpoint().await
    }
    async fn late_steps(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<LateRecord>, StoreError> {
        self.inner.late_steps(from, to, limit).await
    }
    async fn late_steps_built(&self) -> Result<bool, StoreError> {
        self.inner.late_steps_built().await
    }
    async fn instances_with_breaches(&self) -> Result<Vec<String>, StoreError> {
        self.inner.instances_with_breaches().await
    }
    async fn put_late_steps(&self, instance: &str, rows: &[LateStep]) -> Result<(), StoreError> {
        self.inner.put_late_steps(instance, rows).await
    }
    async fn mark_late_steps_built(&self) -> Result<(), StoreError> {
        self.inner.mark_late_steps_built().await
    }
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn approver() -> Actor {
    Actor { principal: "审批科-王".into(), office: "审批科".into(), role: "审批科".into() }
}

fn runtime(store: Arc<dyn Store>, clock: Arc<SimulatedClock>, node: &str) -> Arc<Runtime> {
    let (committer, _task) = GroupCommitter::spawn(store.clone(), GroupCommitConfig::default());
    let calendar = Arc::new(Calendar::chinese().unwrap());
    Arc::new(Runtime::new(store, committer, clock, calendar, node.into()))
}

/// Which command node A holds at the gate while node B's lands.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Held {
    /// Node A fires the deadline; node B's approval lands first.
    Timer,
    /// Node A approves; node B's deadline lands first.
    Approval,
}

async fn race(h: Harness, held: Held) {
    let gated = Arc::new(GatedStore { inner: h.store.clone(), gate: Mutex::new(None), passed: Default::default() });
    // Started Monday 2026-03-02 09:00 +08:00: due at the end of Tuesday, 2026-03-03 24:00.
    let clock = Arc::new(SimulatedClock::new(t("2026-03-02T01:00:00Z")));
    let a = runtime(gated.clone(), clock.clone(), "node-a");
    let b = runtime(h.store.clone(), clock.clone(), "node-b");
    b.publish(POLICY).await.unwrap();
    b.start("限时-1", "限时审批", None, &approver(), BTreeMap::new(), None).await.unwrap();
    let due = t("2026-03-03T16:00:00Z");
    assert_eq!(h.store.pending_timers("限时-1").await.unwrap().iter().map(|t| t.due_at).min(), Some(due));
    clock.advance_to(t("2026-03-03T16:00:01Z")).unwrap();

    let approve = |rt: Arc<Runtime>| async move {
        rt.act("限时-1", &approver(), "审批", Action::Approve { comment: Some("同意".into()) }, None, None).await
    };
    let (arrived, release) = gated.arm().await;
    let (fired, approved) = match held {
        Held::Timer => {
            let node_a = a.clone();
            let firing = tokio::spawn(async move { node_a.fire_due(16, Duration::from_secs(30)).await });
            arrived.await.unwrap();
            // The deadline's commit waits at the gate; the approval lands.
            let approved = approve(b.clone()).await;
            release.send(()).unwrap();
            (firing.await.unwrap(), approved)
        }
        Held::Approval => {
            let approving = tokio::spawn(approve(a.clone()));
            arrived.await.unwrap();
            // The approval's commit waits at the gate; the deadline fires.
            let fired = b.fire_due(16, Duration::from_secs(30)).await;
            release.send(()).unwrap();
            (fired, approving.await.unwrap())
        }
    };
    let fired = fired.unwrap();

    let (record, state) = b.load("限时-1").await.unwrap();
    let kinds: Vec<String> = h.store.events("限时-1", 0, 100).await.unwrap().into_iter().map(|e| e.kind).collect();
    let step = &state.nodes["审批"];
    match held {
        Held::Timer => {
            // The approval won; the deadline, decided again on it, found nothing to do: its
            // timer went with the step, so nothing was fired.
            assert!(approved.is_ok(), "{approved:?}");
            assert_eq!(fired, 0);
            assert_eq!((step.status, step.outcome), (NodeStatus::Done, Some(Outcome::Approved)));
            assert_eq!(state.status, Status::Completed);
            assert_eq!(kinds, ["started", "opened", "acted", "completed", "instance_completed"], "no breach recorded");
        }
        Held::Approval => {
            // The deadline won; the approval, decided again on it, is refused in the rule's words.
            assert_eq!(fired, 1);
            match approved {
                Err(RuntimeError::Refused(r)) => {
                    assert_eq!(r.code(), "F003", "{r}");
                    assert_eq!(r.to_string(), "the instance is ended by a rejection; nothing more can be done on it");
                }
                other => panic!("the late approval must be refused, got {other:?}"),
            }
            assert_eq!((step.status, step.outcome), (NodeStatus::Done, Some(Outcome::Rejected)));
            assert_eq!(state.status, Status::Rejected);
            assert_eq!(
                kinds,
                ["started", "opened", "overdue", "completed", "instance_rejected"],
                "no approval recorded"
            );
        }
    }
    assert_eq!(record.version, kinds.len() as u64);
    assert!(h.store.pending_timers("限时-1").await.unwrap().is_empty(), "no timer left to fire");
    assert_eq!(b.fire_all_due().await.unwrap(), 0, "nothing fires twice");
    assert_eq!(h.store.verify("限时-1").await.unwrap(), kinds.len() as u64);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_beats_a_held_deadline_on_sqlite() {
    race(Harness::sqlite().await, Held::Timer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_beats_a_held_approval_on_sqlite() {
    race(Harness::sqlite().await, Held::Approval).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_beats_a_held_deadline_on_postgres() {
    let Some(h) = Harness::postgres("race_appr_first").await else { return };
    race(h, Held::Timer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_beats_a_held_approval_on_postgres() {
    let Some(h) = Harness::postgres("race_dl_first").await else { return };
    race(h, Held::Approval).await;
}

/// Issue 10.4: an action decided on the copy the API handler loaded. A copy gone stale (another
/// office acted meanwhile) costs a lost compare-and-set and a decision on the current state: the
/// second approval is refused, nothing is recorded twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_on_a_stale_loaded_copy_is_decided_again_on_the_current_state() {
    let h = Harness::sqlite().await;
    let clock = Arc::new(SimulatedClock::new(t("2026-03-02T01:00:00Z")));
    let rt = runtime(h.store.clone(), clock, "node-a");
    rt.publish(POLICY).await.unwrap();
    rt.start("限时-2", "限时审批", None, &approver(), BTreeMap::new(), None).await.unwrap();
    let approve = || Action::Approve { comment: Some("同意".into()) };

    // A fresh copy: decided on it directly.
    let fresh = rt.load("限时-2").await.unwrap();
    let other = rt.load("限时-2").await.unwrap();
    let done = rt.act_loaded(Arc::new(fresh), &approver(), "审批", approve(), None, None).await.unwrap();
    assert_eq!(done.version, 5);
    // The other copy is stale now (version 2): the runtime loads again and is refused.
    assert_eq!(other.0.version, 2);
    match rt.act_loaded(Arc::new(other), &approver(), "审批", approve(), None, None).await {
        Err(RuntimeError::Refused(r)) => assert_eq!(r.code(), "F003", "{r}"),
        got => panic!("a second approval on a completed instance must be refused, got {got:?}"),
    }
    assert_eq!(rt.load("限时-2").await.unwrap().0.version, 5, "nothing recorded twice");
    h.finish().await;
}

/// Issue 10.3: on PostgreSQL the group committer writes a second batch while the first is still
/// in flight (its transaction up to the audit log's lock, `Store::batches_in_flight`), of other
/// instances only: a commit to an instance of the batch in flight waits for it, and then follows
/// it (were it written beside it, it would be refused: the version it expects is not yet there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_batch_of_other_instances_is_written_while_one_is_in_flight_on_postgres() {
    use crate::store::{event, instance, step, t};
    let Some(h) = Harness::postgres("two_in_flight").await else { return };
    assert_eq!(h.store.batches_in_flight(), 2);
    for id in ["a", "b"] {
        instance(h.store.as_ref(), id).await;
    }
    let gated = Arc::new(GatedStore { inner: h.store.clone(), gate: Mutex::new(None), passed: Default::default() });
    let (committer, task) = GroupCommitter::spawn(gated.clone(), GroupCommitConfig::default());
    let (arrived, release) = gated.arm().await;
    let at = t("2025-03-03T09:00:00+08:00");
    let first = tokio::spawn({
        let committer = committer.clone();
        async move { committer.commit(step("a", 1, vec![event(at, "first", serde_json::json!({}))])).await }
    });
    arrived.await.unwrap();
    // `a`'s batch is held; `b`'s goes through beside it.
    let other = committer.commit(step("b", 1, vec![event(at, "beside", serde_json::json!({}))])).await.unwrap();
    assert_eq!(other.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
    let after = tokio::spawn({
        let committer = committer.clone();
        async move { committer.commit(step("a", 2, vec![event(at, "after", serde_json::json!({}))])).await }
    });
    release.send(()).unwrap();
    assert_eq!(first.await.unwrap().unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
    assert_eq!(after.await.unwrap().unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
    assert_eq!(*gated.passed.lock().unwrap(), [vec!["b".to_string()], vec!["a".into()], vec!["a".into()]]);
    drop(committer);
    task.await.unwrap();
    assert_eq!(h.store.verify("a").await.unwrap(), 3);
    assert_eq!(h.store.verify("b").await.unwrap(), 2);
    h.finish().await;
}
