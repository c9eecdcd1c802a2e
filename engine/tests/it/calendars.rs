//! R0.2 on several nodes: a calendar year added through one node reaches the others without a
//! restart, and each waiting deadline is computed exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use civicflow_engine::calendar::Calendar;
use civicflow_engine::clock::SimulatedClock;
use civicflow_engine::core::{Actor, Due, Event};
use civicflow_engine::runtime::Runtime;
use civicflow_engine::store::{GroupCommitConfig, GroupCommitter, Store};

use crate::store::Harness;

const FIXTURE_2027: &str = include_str!("../../../tests/data/calendar-test-fixture/2027.json");

const POLICY: &str = r#"
policy 诉求 {
  role 部门
  step 办理: task {
    by 部门
    due 10 workdays
  }
}"#;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn node(h: &Harness, clock: Arc<SimulatedClock>, name: &str) -> Arc<Runtime> {
    let (committer, _task) = GroupCommitter::spawn(h.store.clone(), GroupCommitConfig::default());
    let calendar = Arc::new(Calendar::chinese().unwrap());
    Arc::new(Runtime::new(h.store.clone(), committer, clock, calendar, name.into()))
}

async fn applied(store: &dyn Store, id: &str) -> usize {
    let events = store.events(id, 0, 10_000).await.unwrap();
    events
        .into_iter()
        .filter(|e| matches!(serde_json::from_value((*e.payload).clone()), Ok(Event::CalendarApplied { .. })))
        .count()
}

async fn due(rt: &Runtime, id: &str) -> Due {
    rt.load(id).await.unwrap().1.nodes["办理"].due()
}

async fn year_added_on_another_node(h: Harness) {
    // Thursday 2026-12-24, 10:00 in Beijing: ten working days reach into 2027.
    let clock = Arc::new(SimulatedClock::new(t("2026-12-24T02:00:00Z")));
    let (a, b) = (node(&h, clock.clone(), "node-a"), node(&h, clock, "node-b"));
    a.publish(POLICY).await.unwrap();
    let office = Actor { principal: "科员".into(), office: "民政科".into(), role: "部门".into() };
    let start = |id: &'static str| {
        let b = b.clone();
        let office = office.clone();
        async move { b.start(id, "诉求", None, &office, BTreeMap::new(), None).await.unwrap() }
    };
    start("诉求-1").await;
    assert_eq!(due(&b, "诉求-1").await, Due::AwaitingCalendar { year: 2027 });

    let admin = Actor { principal: "admin".into(), office: String::new(), role: String::new() };
    let added = a.add_calendar_year(FIXTURE_2027, "2027.json", &admin).await.unwrap();
    assert_eq!(added.instances, ["诉求-1"]);
    // 12-25, 12-28 … 12-31, then 01-04 … 01-08 (01-01 to 01-03 off): the end of 01-08, +08:00.
    let expected = Due::At(t("2027-01-08T16:00:00Z"));
    assert_eq!(due(&b, "诉求-1").await, expected);

    // Node B has not looked yet: its calendar still lacks 2027.
    start("诉求-2").await;
    assert_eq!(due(&b, "诉求-2").await, Due::AwaitingCalendar { year: 2027 });
    let refreshed = b.refresh_calendar_years().await.unwrap();
    assert_eq!(refreshed.len(), 1);
    assert_eq!((refreshed[0].year, refreshed[0].instances.clone()), (2027, vec!["诉求-2".to_string()]));
    assert_eq!(due(&b, "诉求-2").await, expected);
    // Once each, in the name of the administrator who added the year.
    assert_eq!(applied(h.store.as_ref(), "诉求-1").await, 1);
    assert_eq!(applied(h.store.as_ref(), "诉求-2").await, 1);
    let events = h.store.events("诉求-2", 0, 100).await.unwrap();
    let last = events.iter().rev().find(|e| e.kind == "calendar_applied").unwrap();
    assert_eq!(last.actor, "admin");
    // Nothing new: a second look does nothing, and B now computes 2027 deadlines itself.
    assert!(b.refresh_calendar_years().await.unwrap().is_empty());
    assert!(a.refresh_calendar_years().await.unwrap().is_empty(), "A saw its own year");
    start("诉求-3").await;
    assert_eq!(due(&b, "诉求-3").await, expected);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r0_2_a_year_added_on_one_node_reaches_the_other_on_sqlite() {
    year_added_on_another_node(Harness::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r0_2_a_year_added_on_one_node_reaches_the_other_on_postgres() {
    if let Some(h) = Harness::postgres("calendar_nodes").await {
        year_added_on_another_node(h).await;
    }
}
