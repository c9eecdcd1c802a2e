//! Issue 10.6: an inbox is read from the table of open steps the commits keep, not from every
//! running instance. On SQLite and PostgreSQL, through the runtime: whose inbox lists what (a
//! bound role only for its office, R6.1; a delegate by name; an escalated leader, R3.5), in
//! due order, a page at a time; and the table a database from before it gets built from the
//! states is row for row the one the commits kept.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use civicflow_dsl::value::Value;
use civicflow_engine::calendar::Calendar;
use civicflow_engine::clock::SimulatedClock;
use civicflow_engine::core::{Action, Actor, Reader};
use civicflow_engine::runtime::Runtime;
use civicflow_engine::store::{GroupCommitConfig, GroupCommitter, InboxCursor, InboxQuery, Store, StoreError};

use crate::store::Harness;

const POLICY: &str = r#"
policy 待办 {
  param 社区名称: text
  role 民生办
  role 社区居委会 bound by param 社区名称
  role 分管领导
  step 受理: task {
    by 社区居委会
    due 1 workdays
    on breach overdue, escalate 分管领导
  }
  step 审核: approval { by 民生办 after 受理 }
}"#;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn actor(role: &str, office: &str) -> Actor {
    Actor { principal: format!("{office}-{role}"), office: office.into(), role: role.into() }
}

/// The `(instance, node)` of one page of the inbox, and the total.
async fn inbox(
    store: &dyn Store,
    principal: &str,
    office: &str,
    roles: &[&str],
    page: u32,
    size: u32,
) -> (Vec<String>, u64) {
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    let query = InboxQuery { readers: Reader::keys_of(principal, office, &roles), page, page_size: size, after: None };
    let found = store.inbox(&query).await.unwrap();
    (found.items.iter().map(|r| format!("{}/{}", r.instance, r.node)).collect(), found.total)
}

async fn an_inbox_is_read_from_the_open_steps_the_commits_keep(h: &Harness) {
    let clock = Arc::new(SimulatedClock::new(t("2026-03-02T01:00:00Z"))); // Monday 09:00 +08:00
    let (committer, task) = GroupCommitter::spawn(h.store.clone(), GroupCommitConfig::default());
    let rt = Arc::new(Runtime::new(
        h.store.clone(),
        committer,
        clock.clone(),
        Arc::new(Calendar::chinese().unwrap()),
        "n".into(),
    ));
    let store = h.store.as_ref();
    assert!(store.open_steps_built().await.unwrap(), "a new database has nothing to build");
    rt.publish(POLICY).await.unwrap();
    let clerk = actor("民生办", "民生办");
    let community = |name: &str| BTreeMap::from([("社区名称".to_string(), Value::Text(name.into()))]);
    // Monday: 东湖-1 and 西湖-1, due at the end of Tuesday; Tuesday: 东湖-2, due a day later.
    rt.start("东湖-1", "待办", None, &clerk, community("东湖"), None).await.unwrap();
    rt.start("西湖-1", "待办", None, &clerk, community("西湖"), None).await.unwrap();
    clock.advance_to(t("2026-03-03T01:00:00Z")).unwrap();
    rt.start("东湖-2", "待办", None, &clerk, community("东湖"), None).await.unwrap();

    // R6.1: each committee sees its own community's steps, soonest due first.
    assert_eq!(
        inbox(store, "东湖-主任", "东湖", &["社区居委会"], 1, 10).await,
        (vec!["东湖-1/受理".to_string(), "东湖-2/受理".to_string()], 2)
    );
    assert_eq!(inbox(store, "西湖-主任", "西湖", &["社区居委会"], 1, 10).await, (vec!["西湖-1/受理".to_string()], 1));
    assert_eq!(inbox(store, "南湖-主任", "南湖", &["社区居委会"], 1, 10).await, (vec![], 0));
    // A page at a time, with the total.
    assert_eq!(inbox(store, "东湖-主任", "东湖", &["社区居委会"], 2, 1).await, (vec!["东湖-2/受理".to_string()], 2));
    assert_eq!(inbox(store, "东湖-主任", "东湖", &["社区居委会"], 3, 1).await, (vec![], 2));
    // Or a page on from the step the last one ended with (a cursor, as a token and back).
    let readers = Reader::keys_of("东湖-主任", "东湖", &["社区居委会".to_string()]);
    let first = InboxQuery { readers: readers.clone(), page: 1, page_size: 1, after: None };
    let first = store.inbox(&first).await.unwrap().items;
    let token = InboxCursor::after(&first[0]).encode();
    let cursor = InboxCursor::decode(&token).unwrap();
    assert_eq!(cursor, InboxCursor { due_at: first[0].due_at, instance: "东湖-1".into(), node: "受理".into() });
    let on =
        |after: InboxCursor, page: u32| InboxQuery { readers: readers.clone(), page, page_size: 1, after: Some(after) };
    let next = store.inbox(&on(cursor.clone(), 1)).await.unwrap();
    assert_eq!((next.items.iter().map(|r| r.instance.as_str()).collect::<Vec<_>>(), next.total), (vec!["东湖-2"], 2));
    let last = store.inbox(&on(InboxCursor::after(&next.items[0]), 1)).await.unwrap();
    assert_eq!((last.items.len(), last.total), (0, 2));
    assert!(matches!(store.inbox(&on(cursor, 2)).await, Err(StoreError::Invalid(_))), "a cursor reads one page on");
    for garbage in ["", "x", "WyJhIl0", "bm90IGpzb24"] {
        assert_eq!(InboxCursor::decode(garbage), None, "{garbage}");
    }

    // Done: the step leaves the committee's inbox and the review enters 民生办's (no deadline).
    rt.act("东湖-1", &actor("社区居委会", "东湖"), "受理", Action::Complete { report: "已受理".into() }, None, None)
        .await
        .unwrap();
    assert_eq!(inbox(store, "东湖-主任", "东湖", &["社区居委会"], 1, 10).await, (vec!["东湖-2/受理".to_string()], 1));
    assert_eq!(inbox(store, "民生办-科员", "民生办", &["民生办"], 1, 10).await, (vec!["东湖-1/审核".to_string()], 1));
    // Handed over to 李四 by name: in his inbox though he holds no role.
    rt.act("东湖-1", &clerk, "审核", Action::Delegate { to: "李四".into() }, None, None).await.unwrap();
    assert_eq!(inbox(store, "李四", "民生办", &[], 1, 10).await, (vec!["东湖-1/审核".to_string()], 1));
    // Listed under two of his keys (his role and his name): once, and counted once.
    assert_eq!(inbox(store, "李四", "民生办", &["民生办"], 1, 10).await, (vec!["东湖-1/审核".to_string()], 1));
    // And after it by cursor: nothing more (not the same step from his other key).
    let both = InboxQuery {
        readers: Reader::keys_of("李四", "民生办", &["民生办".to_string()]),
        page: 1,
        page_size: 1,
        after: Some(InboxCursor { due_at: None, instance: "东湖-1".into(), node: "审核".into() }),
    };
    let after = store.inbox(&both).await.unwrap();
    assert_eq!((after.items.len(), after.total), (0, 1));

    // R3.5: on Wednesday morning 西湖's limit has lapsed (东湖-2's has not): escalated to the
    // leader, whose inbox now lists it (and only it), while the committee keeps it.
    clock.advance_to(t("2026-03-04T01:00:00Z")).unwrap();
    assert_eq!(rt.fire_all_due().await.unwrap(), 1);
    let leader = inbox(store, "王副主任", "街道", &["分管领导"], 1, 10).await;
    assert_eq!(leader, (vec!["西湖-1/受理".to_string()], 1));
    assert_eq!(inbox(store, "西湖-主任", "西湖", &["社区居委会"], 1, 10).await, (vec!["西湖-1/受理".to_string()], 1));

    // A database from before the table: built from the states, row for row what the commits
    // kept.
    let kept = h.open_step_table().await;
    // Tuesday 03-03 24:00 and Wednesday 03-04 24:00 in Beijing; no deadline: last.
    let tuesday = t("2026-03-03T16:00:00Z").timestamp_micros();
    let wednesday = t("2026-03-04T16:00:00Z").timestamp_micros();
    assert_eq!(
        kept.iter().map(|r| (r.0.as_str(), r.1.as_str(), r.2.as_str(), r.3, r.4)).collect::<Vec<_>>(),
        vec![
            ("东湖-1", "审核", "a:民生办", i64::MAX, false),
            ("东湖-1", "审核", "d:李四", i64::MAX, false),
            ("东湖-2", "受理", "a:社区居委会@东湖", wednesday, false),
            ("西湖-1", "受理", "a:社区居委会@西湖", tuesday, true),
            ("西湖-1", "受理", "e:分管领导", tuesday, true),
        ]
    );
    // The totals come from counts the commits kept per key (东湖's committee counted down from
    // 2 to 1 when one was done; emptied with the table, rebuilt with it).
    let counts = [
        ("a:民生办".to_string(), 1),
        ("a:社区居委会@东湖".to_string(), 1),
        ("a:社区居委会@西湖".to_string(), 1),
        ("d:李四".to_string(), 1),
        ("e:分管领导".to_string(), 1),
    ];
    assert_eq!(h.open_step_counts().await, counts);
    h.forget_open_steps().await;
    assert_eq!(h.open_step_counts().await, []);
    assert!(!store.open_steps_built().await.unwrap());
    assert_eq!(inbox(store, "东湖-主任", "东湖", &["社区居委会"], 1, 10).await, (vec![], 0));
    let mut told = Vec::new();
    assert_eq!(rt.build_open_steps(|done, all| told.push((done, all))).await.unwrap(), 3);
    assert_eq!(told, [(3, 3)]);
    assert_eq!(h.open_step_table().await, kept);
    assert_eq!(h.open_step_counts().await, counts);
    assert!(store.open_steps_built().await.unwrap());
    assert_eq!(rt.build_open_steps(|_, _| ()).await.unwrap(), 0, "built once");
    drop(rt);
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_inbox_is_read_from_the_open_steps_the_commits_keep() {
    let h = Harness::sqlite().await;
    an_inbox_is_read_from_the_open_steps_the_commits_keep(&h).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_inbox_is_read_from_the_open_steps_the_commits_keep() {
    let Some(h) = Harness::postgres("an_inbox_is_read_from_the_open_steps").await else { return };
    an_inbox_is_read_from_the_open_steps_the_commits_keep(&h).await;
    h.finish().await;
}
