//! Issue 12.2–12.4 on SQLite and PostgreSQL: signed checkpoints kept by size, the leaves read
//! with their events, proofs built from the stored leaves checked against the tree's root, and a
//! checkpoint refused over a log rewritten under the server; issue 12.6's lateness index, kept by
//! the commits and built from the histories for a database from before it, row for row alike.

use std::sync::Arc;

use serde_json::json;

use civicflow_engine::audit::merkle::{self, Hash};
use civicflow_engine::audit::note::{Checkpoint, NoteSigner};
use civicflow_engine::audit::{self, ChainedEvent};
use civicflow_engine::calendar::Calendar;
use civicflow_engine::clock::SimulatedClock;
use civicflow_engine::runtime::{Runtime, RuntimeError};
use civicflow_engine::store::{AuditCheckpointRecord, GroupCommitConfig, GroupCommitter, Store, StoreError};

use crate::store::{event, policy, record, start, step, t, Harness, T0};

/// `n` events over two instances, committed a few at a time; the leaf hashes in tree order.
async fn log_of(store: &dyn Store, n: u64) -> Vec<Hash> {
    log_in_commits_of(store, n, 3).await
}

/// `n` events over two instances, committed `per_commit` at a time; the leaf hashes in tree order.
async fn log_in_commits_of(store: &dyn Store, n: u64, per_commit: u64) -> Vec<Hash> {
    let t0 = t(T0);
    store.publish_policy(policy("p", "h1", T0)).await.unwrap();
    store.create_instance(record("x", "p", "h1", t0), start("x", t0)).await.unwrap();
    store.create_instance(record("y", "p", "h1", t0), start("y", t0)).await.unwrap();
    let (mut vx, mut vy, mut written, mut on_x) = (1, 1, 2, true);
    while written < n {
        let k = (n - written).min(per_commit);
        let events = (0..k).map(|i| event(t0, "vote_entered", json!({ "n": written + i }))).collect();
        on_x = !on_x;
        if !on_x {
            store.commit(step("x", vx, events)).await.unwrap();
            vx += k;
        } else {
            store.commit(step("y", vy, events)).await.unwrap();
            vy += k;
        }
        written += k;
    }
    store.audit_leaves(0, 100_000).await.unwrap().iter().map(|l| l.leaf).collect()
}

fn runtime(h: &Harness) -> Runtime {
    let clock = Arc::new(SimulatedClock::new(t(T0)));
    let (committer, _task) = GroupCommitter::spawn(h.store.clone(), GroupCommitConfig::default());
    Runtime::new(h.store.clone(), committer, clock, Arc::new(Calendar::chinese().unwrap()), "n".into())
}

async fn checkpoints_are_kept_by_size_and_leaves_read_with_their_events(h: &Harness) {
    let store = h.store.as_ref();
    assert_eq!(store.latest_audit_checkpoint().await.unwrap(), None);
    let leaves = log_of(store, 9).await;
    let cp = |size: u64, note: &str| AuditCheckpointRecord {
        size,
        root: merkle::root(&leaves[..size as usize]),
        note: note.into(),
        made_at: t(T0),
    };
    assert!(store.put_audit_checkpoint(cp(3, "first")).await.unwrap());
    assert!(!store.put_audit_checkpoint(cp(3, "second")).await.unwrap(), "a size is signed once");
    assert_eq!(store.latest_audit_checkpoint().await.unwrap(), Some(cp(3, "first")));
    assert!(store.put_audit_checkpoint(cp(9, "later")).await.unwrap());
    assert_eq!(store.latest_audit_checkpoint().await.unwrap().map(|c| c.size), Some(9));

    let entries = store.audit_entries(2, 4).await.unwrap();
    assert_eq!(entries.iter().map(|e| e.leaf.index).collect::<Vec<_>>(), [2, 3, 4, 5]);
    for e in &entries {
        let event = e.event.as_ref().unwrap();
        assert_eq!((event.instance.as_str(), event.seq), (e.leaf.instance.as_str(), e.leaf.seq));
        assert_eq!(merkle::leaf_hash(&audit::encode(&event.fields())), e.leaf.leaf);
    }
    let of_y: Vec<u64> = store.audit_leaves_of("y").await.unwrap().iter().map(|l| l.seq).collect();
    assert_eq!(of_y, [1, 2, 3, 4]);
    // Each event's row says where its leaf is, found by the instance's key (issue 12.3).
    let by_rows = store.event_leaf_indexes("y").await.unwrap();
    let by_log: Vec<(u64, Option<u64>)> =
        store.audit_leaves_of("y").await.unwrap().iter().map(|l| (l.seq, Some(l.index))).collect();
    assert_eq!(by_rows, by_log);
    // An event deleted under the server: its leaf stays, without an event.
    h.exec(
        &["DROP TRIGGER events_no_delete", "DELETE FROM events WHERE instance = 'y' AND seq = 2"],
        &[
            "ALTER TABLE events DISABLE TRIGGER events_append_only",
            "DELETE FROM events WHERE instance = 'y' AND seq = 2",
        ],
    )
    .await;
    let all = store.audit_entries(0, 100).await.unwrap();
    let missing: Vec<(String, u64)> =
        all.iter().filter(|e| e.event.is_none()).map(|e| (e.leaf.instance.clone(), e.leaf.seq)).collect();
    assert_eq!(missing, [("y".to_string(), 2)]);
}

async fn proofs_from_the_stored_leaves_verify_against_the_root(h: &Harness) {
    let rt = runtime(h);
    // Past two blocks of 256, so remembered subtree roots and partial blocks both serve.
    let leaves = log_of(h.store.as_ref(), 600).await;
    assert_eq!(leaves.len(), 600);
    for size in [1u64, 2, 255, 256, 257, 511, 512, 513, 600] {
        let root = merkle::root(&leaves[..size as usize]);
        assert_eq!(rt.audit_root_at(size).await.unwrap(), root, "root of {size}");
        for index in [0, size / 3, size / 2, size - 1] {
            let proof = rt.audit_inclusion_proof(index, size).await.unwrap();
            assert_eq!(proof, merkle::inclusion_proof(index, size, &mut &leaves[..]).unwrap(), "{index} of {size}");
            assert!(merkle::verify_inclusion(&leaves[index as usize], index, size, &proof, &root));
        }
        // Several at once, the tree read once: the same paths.
        let some = [size - 1, 0, size / 2, 0];
        let each: Vec<Vec<Hash>> =
            some.iter().map(|&i| merkle::inclusion_proof(i, size, &mut &leaves[..]).unwrap()).collect();
        assert_eq!(rt.audit_inclusion_proofs(&some, size).await.unwrap(), each, "{size}");
        for first in [1, size / 2, size] {
            if first == 0 {
                continue;
            }
            let proof = rt.audit_consistency_proof(first, size).await.unwrap();
            let first_root = merkle::root(&leaves[..first as usize]);
            assert!(merkle::verify_consistency(first, size, &proof, &first_root, &root), "{first} -> {size}");
        }
    }
    let out = |r: Result<Vec<Hash>, RuntimeError>| match r {
        Err(RuntimeError::OutOfRange(m)) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(out(rt.audit_inclusion_proof(0, 601).await), "the tree has 600 leaves, not 601");
    assert_eq!(out(rt.audit_inclusion_proof(5, 5).await), "leaf 5 is not in a tree of 5");
    assert_eq!(out(rt.audit_consistency_proof(7, 6).await), "no consistency proof from a tree of 7 to one of 6");
}

/// Roots and proofs of a tree larger than one read of leaves (4,096): a node that never read it
/// builds the halves from several reads; a node that saw it grow combines what it remembered with
/// what was added. Both agree with the tree built in memory.
async fn proofs_over_a_tree_larger_than_one_read(h: &Harness) {
    let leaves = log_in_commits_of(h.store.as_ref(), 8_492, 250).await;
    assert_eq!(leaves.len(), 8_492);
    let cold = runtime(h);
    assert_eq!(cold.audit_root_at(8_492).await.unwrap(), merkle::root(&leaves));
    let proof = cold.audit_inclusion_proof(5_000, 8_492).await.unwrap();
    assert_eq!(proof, merkle::inclusion_proof(5_000, 8_492, &mut &leaves[..]).unwrap());

    let growing = runtime(h);
    let mut last = 1u64;
    for size in [300u64, 4_095, 4_096, 4_097, 6_000, 8_191, 8_192, 8_193, 8_492] {
        let root = merkle::root(&leaves[..size as usize]);
        assert_eq!(growing.audit_root_at(size).await.unwrap(), root, "root of {size}");
        for index in [0, size / 2, size - 1] {
            let proof = growing.audit_inclusion_proof(index, size).await.unwrap();
            assert_eq!(proof, merkle::inclusion_proof(index, size, &mut &leaves[..]).unwrap(), "{index} of {size}");
        }
        let proof = growing.audit_consistency_proof(last, size).await.unwrap();
        assert_eq!(proof, merkle::consistency_proof(last, size, &mut &leaves[..]).unwrap(), "{last} -> {size}");
        last = size;
    }
}

async fn a_checkpoint_is_signed_only_over_leaves_that_still_make_the_last(h: &Harness) {
    let rt = runtime(h);
    let signer = NoteSigner::from_seed("civicflow.test", [3; 32]).unwrap();
    let first = rt.make_checkpoint(&signer).await.unwrap().unwrap();
    assert_eq!((first.size, first.root), (0, merkle::empty_root()), "an empty log is signed too");
    let leaves = log_of(h.store.as_ref(), 300).await;
    let made = rt.make_checkpoint(&signer).await.unwrap().unwrap();
    let opened = Checkpoint::open(&made.note, &signer.verifier()).unwrap();
    assert_eq!(opened, Checkpoint { origin: "civicflow.test".into(), size: 300, root: merkle::root(&leaves) });
    assert_eq!(rt.make_checkpoint(&signer).await.unwrap(), None, "nothing new: nothing signed");
    assert_eq!(rt.latest_checkpoint().await.unwrap(), Some(made));
    // A leaf rewritten under the server (a new node: nothing remembered) is refused.
    h.exec(
        &["DROP TRIGGER audit_leaves_no_update", "UPDATE audit_leaves SET leaf = zeroblob(32) WHERE idx = 17"],
        &[
            "ALTER TABLE audit_leaves DISABLE TRIGGER audit_leaves_append_only",
            "UPDATE audit_leaves SET leaf = decode(repeat('00', 32), 'hex') WHERE idx = 17",
        ],
    )
    .await;
    let other = runtime(h);
    let err = other.make_checkpoint(&signer).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "stored data cannot be read: the audit log's first 300 leaves no longer make the root of its last signed checkpoint"
    );
}

/// Issue 12.1: the frontier a store remembers after its appends is a hint, never trusted — with
/// another handle appending to the same database (another process or node) and appends rolled
/// back with their commits (a fired timer's lease lost after the events were written), every
/// event is still one leaf at the next index, and the stored frontier makes the leaves' root.
async fn appends_from_two_handles_and_rolled_back_commits_keep_one_tree(h: &Harness) {
    let (a, b) = (h.store.clone(), h.other_handle().await);
    let t0 = t(T0);
    let e = |n: u64| vec![event(t0, "vote_entered", json!({ "n": n }))];
    a.publish_policy(policy("p", "h1", T0)).await.unwrap();
    a.create_instance(record("x", "p", "h1", t0), start("x", t0)).await.unwrap();
    b.create_instance(record("y", "p", "h1", t0), start("y", t0)).await.unwrap();
    a.commit(step("x", 1, e(1))).await.unwrap();
    b.commit(step("y", 1, e(2))).await.unwrap();
    // `a` remembers the tree at 3 leaves; it has 4.
    a.commit(step("x", 2, e(3))).await.unwrap();
    // Appended, then rolled back: in a batch of two, then on its own.
    let mut lost = step("y", 2, e(4));
    lost.fire = Some((999_999, 1));
    let answers = a.commit_many(vec![step("x", 3, e(5)), lost]).await.0;
    assert!(answers[0].is_ok(), "{:?}", answers[0]);
    assert!(matches!(answers[1], Err(StoreError::TimerLost { timer: 999_999, fence: 1 })), "{:?}", answers[1]);
    // `a` remembers a leaf that was rolled back; `b` remembers 4 leaves of 6.
    b.commit(step("y", 2, e(6))).await.unwrap();
    a.commit_many(vec![step("x", 4, e(7)), step("y", 3, e(8))]).await.0.into_iter().for_each(|r| {
        r.unwrap();
    });

    // More events than one SQLite statement carries, after `b` appended again: the leaves and
    // the events in several statements, the first checked.
    b.commit(step("y", 4, e(9))).await.unwrap();
    let many: Vec<_> = (0..600).map(|n| event(t0, "vote_entered", json!({ "n": 100 + n }))).collect();
    a.commit(step("x", 5, many)).await.unwrap();
    let all = a.audit_entries(0, 1_000).await.unwrap();
    assert_eq!(all.len(), 610);
    assert!(all.iter().enumerate().all(|(i, e)| e.leaf.index == i as u64));
    assert_eq!(all[9].event.as_ref().map(|e| (e.instance.as_str(), e.seq)), Some(("y", 5)));
    assert_eq!(all[609].event.as_ref().map(|e| (e.instance.as_str(), e.seq)), Some(("x", 605)));

    let leaves = a.audit_leaves(0, 9).await.unwrap();
    let placed: Vec<(u64, &str, u64)> = leaves.iter().map(|l| (l.index, l.instance.as_str(), l.seq)).collect();
    assert_eq!(
        placed,
        [
            (0, "x", 1),
            (1, "y", 1),
            (2, "x", 2),
            (3, "y", 2),
            (4, "x", 3),
            (5, "x", 4),
            (6, "y", 3),
            (7, "x", 5),
            (8, "y", 4)
        ]
    );
    for entry in &all {
        let event = entry.event.as_ref().unwrap();
        assert_eq!(merkle::leaf_hash(&audit::encode(&event.fields())), entry.leaf.leaf, "leaf {}", entry.leaf.index);
    }
    // The frontier the last append stored is the leaves' own: a checkpoint is signed over it.
    let signer = NoteSigner::from_seed("civicflow.test", [3; 32]).unwrap();
    let made = runtime(h).make_checkpoint(&signer).await.unwrap().unwrap();
    let hashes: Vec<Hash> = all.iter().map(|e| e.leaf.leaf).collect();
    assert_eq!((made.size, made.root), (610, merkle::root(&hashes)));
}

const LATE: &str = r#"
policy 逾期 {
  param 社区名称: text
  role 社区居委会 bound by param 社区名称
  role 民生办
  step 受理: task {
    by 社区居委会
    due 1 workdays
    on breach overdue
  }
  step 审核: approval {
    by 民生办
    after 受理
    due 1 workdays
    on breach overdue
  }
}"#;

async fn the_lateness_index_built_from_the_histories_is_the_one_the_commits_kept(h: &Harness) {
    use civicflow_dsl::value::Value;
    use civicflow_engine::core::{Action, Actor};
    let clock = Arc::new(SimulatedClock::new(t("2026-03-02T01:00:00Z"))); // Monday 09:00 +08:00
    let (committer, _task) = GroupCommitter::spawn(h.store.clone(), GroupCommitConfig::default());
    let calendar = Arc::new(Calendar::chinese().unwrap());
    let rt = Arc::new(Runtime::new(h.store.clone(), committer, clock.clone(), calendar, "n".into()));
    rt.publish(LATE).await.unwrap();
    let admin = Actor { principal: "admin".into(), office: "街道".into(), role: "admin".into() };
    for (id, community) in [("x", "东湖社区"), ("y", "西湖社区")] {
        let params = [("社区名称".to_string(), Value::Text(community.into()))].into_iter().collect();
        rt.start(id, "逾期", None, &admin, params, None).await.unwrap();
    }
    let donghu = Actor { principal: "王".into(), office: "东湖社区".into(), role: "社区居委会".into() };
    rt.act("x", &donghu, "受理", Action::Complete { report: "已受理".into() }, None, None).await.unwrap();
    clock.advance_to(t("2026-03-06T01:00:00Z")).unwrap();
    rt.fire_all_due().await.unwrap();
    let (from, to) = (t("2026-03-01T00:00:00Z"), t("2026-04-01T00:00:00Z"));
    let kept = h.store.late_steps(from, to, 100).await.unwrap();
    let who: Vec<(String, String, String, Option<String>)> = kept
        .iter()
        .map(|r| (r.instance.clone(), r.step.node.clone(), r.step.role.clone(), r.step.office.clone()))
        .collect();
    assert_eq!(
        who,
        [
            // Both fired when the clock moved: one instant, then by instance.
            ("x".to_string(), "审核".to_string(), "民生办".to_string(), None),
            ("y".to_string(), "受理".to_string(), "社区居委会".to_string(), Some("西湖社区".to_string())),
        ]
    );
    assert_eq!(kept[0].policy, "逾期");
    assert!(h.store.late_steps_built().await.unwrap(), "a new database is built from the start");
    // As a database from before the index: no rows, not built; then built from the histories.
    h.exec(
        &["DELETE FROM late_steps", "DELETE FROM derived_builds WHERE name = 'late_steps'"],
        &["DELETE FROM late_steps", "DELETE FROM derived_builds WHERE name = 'late_steps'"],
    )
    .await;
    assert_eq!(h.store.late_steps(from, to, 100).await.unwrap(), vec![]);
    let mut seen = Vec::new();
    assert_eq!(rt.build_late_steps(|done, all| seen.push((done, all))).await.unwrap(), 2);
    assert_eq!(seen, [(1, 2), (2, 2)]);
    assert_eq!(h.store.late_steps(from, to, 100).await.unwrap(), kept, "row for row");
    assert_eq!(rt.build_late_steps(|_, _| {}).await.unwrap(), 0, "built once");
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = crate::store::Harness::sqlite().await;
                    super::$name(&h).await;
                    h.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(h) = crate::store::Harness::postgres("audit").await else { return };
                    super::$name(&h).await;
                    h.finish().await;
                }
            )*
        }
    };
}

on_both_stores!(
    checkpoints_are_kept_by_size_and_leaves_read_with_their_events,
    proofs_from_the_stored_leaves_verify_against_the_root,
    proofs_over_a_tree_larger_than_one_read,
    a_checkpoint_is_signed_only_over_leaves_that_still_make_the_last,
    appends_from_two_handles_and_rolled_back_commits_keep_one_tree,
    the_lateness_index_built_from_the_histories_is_the_one_the_commits_kept,
);
