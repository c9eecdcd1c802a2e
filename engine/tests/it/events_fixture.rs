//! Stored events outlive the code that wrote them (issue 9: an upgrade never changes a finished
//! history). `engine/tests/data/events/v1.jsonl` holds one event of every kind as this code
//! wrote it when the fixture was made; every later version must read each line back to the same
//! event and write it out again unchanged. A change of encoding adds `v2.jsonl` beside it; `v1`
//! is never edited (`UPDATE_EVENT_FIXTURE=1` writes a missing file, never an existing one).

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use std::collections::BTreeMap;

use civicflow_dsl::value::Value;
use civicflow_engine::core::cycles::CycleLink;
use civicflow_engine::core::{apply, Act, Actor, CalendarNotice, Event, Outcome, State, Tally, VoteCounts, VoteResult};

/// Every kind of event. [`Event::kind`] is exhaustive, so a new variant cannot be forgotten
/// there; add it here too, with an example in [`examples`], and to a new fixture version.
const ALL_KINDS: &[&str] = &[
    "started",
    "expanded",
    "opened",
    "skipped",
    "acted",
    "form_recorded",
    "vote_recorded",
    "objection_raised",
    "withdrawn",
    "delegated",
    "urged",
    "completed",
    "returned",
    "deadline_set",
    "passed_on",
    "reminded",
    "overdue",
    "escalated",
    "notified",
    "reassigned",
    "window_closed",
    "deadline_awaiting_calendar",
    "min_duration_awaiting_calendar",
    "window_awaiting_calendar",
    "calendar_applied",
    "instance_completed",
    "instance_rejected",
    "cancelled",
    "next_cycle_due",
    "next_cycle_refused",
    "next_cycle_opened",
    "bound",
];

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn act(action: &str, text: Option<&str>) -> Act {
    Act {
        actor: Actor { principal: "王书记".into(), office: "东湖社区".into(), role: "社区党组织".into() },
        action: action.into(),
        at: at("2012-04-02T09:30:00+08:00"),
        text: text.map(str::to_string),
    }
}

/// One event of each kind, with the values a real history holds.
fn examples() -> Vec<Event> {
    let t = at("2012-04-09T00:00:00+08:00");
    let node = || "选前准备/公示".to_string();
    let notice = CalendarNotice {
        title: "国务院办公厅关于2027年部分节假日安排的通知".into(),
        date: chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
    };
    vec![
        Event::Started {
            params: BTreeMap::from([
                ("党员人数".into(), Value::int(100)),
                ("社区名称".into(), Value::Text("东湖社区".into())),
                ("开始".into(), Value::Date(chrono::NaiveDate::from_ymd_opt(2012, 3, 21).unwrap())),
            ]),
            values: BTreeMap::from([(
                "差额人数".into(),
                Value::Number(num_rational::BigRational::new(6.into(), 5.into())),
            )]),
            nodes: vec![("制定工作方案".into(), "制定工作方案".into(), None)],
            cycle: Some(CycleLink { number: 2, previous: "东湖-2012".into() }),
        },
        Event::Expanded {
            def: "社区调查".into(),
            copies: vec![("社区调查[0]".into(), Value::Text("第一社区".into()))],
        },
        Event::Opened {
            node: node(),
            window: Some((at("2012-04-01T00:00:00+08:00"), at("2012-05-21T00:00:00+08:00"))),
            due_at: Some(t),
            min_until: Some(at("2012-04-06T00:00:00+08:00")),
        },
        Event::Skipped { node: node(), reason: "its `when` condition is false".into() },
        Event::Acted { node: node(), act: act("approve", Some("同意")) },
        Event::FormRecorded {
            node: node(),
            data: BTreeMap::from([
                ("候选人名单".into(), Value::List(vec![Value::Text("张三".into()), Value::Text("李四".into())])),
                ("得票率".into(), Value::Number(num_rational::BigRational::new(13.into(), 10.into()))),
                ("同意".into(), Value::Bool(true)),
            ]),
        },
        Event::VoteRecorded {
            node: node(),
            result: VoteResult {
                eligible: 500,
                seats: Some(5),
                counts: VoteCounts {
                    present: 420,
                    cast: 418,
                    invalid: 2,
                    tallies: vec![Tally { candidate: "张三".into(), votes: 300 }],
                },
                elected: vec!["张三".into()],
            },
        },
        Event::ObjectionRaised { node: node(), act: act("object", Some("名单有误")) },
        Event::Withdrawn { node: node(), principal: "王书记".into() },
        Event::Delegated {
            node: node(),
            from: "王书记".into(),
            to: "李副书记".into(),
            role: Some("社区党组织".into()),
        },
        Event::Urged { node: node(), act: act("urge", None) },
        Event::Completed { node: node(), outcome: Outcome::Approved },
        Event::Returned {
            from: "审批".into(),
            to: "申请".into(),
            reason: "材料不全".into(),
            reset: vec!["审批".into(), "申请".into()],
            reopened: vec!["申请".into()],
        },
        Event::DeadlineSet { node: node(), due_at: t },
        Event::PassedOn { node: "首办办结".into(), to: "民生办分流".into(), due_at: Some(t) },
        Event::Reminded { node: node(), due_at: t },
        Event::Overdue { node: node(), due_at: t },
        Event::Escalated { node: node(), role: "区领导".into(), due_at: t },
        Event::Notified { node: node(), role: "纪委".into(), due_at: t },
        Event::Reassigned { node: node(), role: "街道办事处".into(), due_at: t },
        Event::WindowClosed { node: node(), at: t },
        Event::DeadlineAwaitingCalendar { node: node(), year: 2027, from: at("2026-12-21T10:00:00+08:00") },
        Event::MinDurationAwaitingCalendar { node: node(), year: 2027, from: at("2026-12-21T10:00:00+08:00") },
        Event::WindowAwaitingCalendar { node: node(), year: 2027, from: at("2026-12-21T10:00:00+08:00") },
        Event::CalendarApplied {
            node: node(),
            year: 2027,
            notice,
            added_by: "admin".into(),
            due_at: Some(at("2027-01-06T00:00:00+08:00")),
            min_until: None,
            window: Some((at("2026-12-21T00:00:00+08:00"), at("2027-01-06T00:00:00+08:00"))),
        },
        Event::InstanceCompleted,
        Event::InstanceRejected { node: "审批".into() },
        Event::Cancelled { reason: "重复立项".into() },
        Event::NextCycleDue {
            cycle: 2,
            instance: "东湖-2012~2".into(),
            due_at: at("2015-05-26T00:00:00+08:00"),
            role: "街道选举领导小组".into(),
        },
        Event::NextCycleRefused {
            cycle: 2,
            instance: "月报~2".into(),
            due_at: at("2026-12-01T00:00:00+08:00"),
            code: "R022".into(),
            reason: "no working-day calendar for 2027".into(),
            role: None,
        },
        Event::NextCycleOpened { cycle: 2, instance: "考核~2".into(), due_at: at("2025-02-01T00:00:00+08:00") },
        Event::Bound {
            role: "社区居委会".into(), office: "东湖社区".into(), node: Some("社区调查[0]".into())
        },
    ]
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/events")
}

#[test]
fn every_kind_has_an_example() {
    let kinds: Vec<&str> = examples().iter().map(Event::kind).collect();
    assert_eq!(kinds, ALL_KINDS, "one example per kind, in the order of ALL_KINDS");
}

#[test]
fn stored_events_of_every_version_read_back_and_write_out_unchanged() {
    let v1 = fixture_dir().join("v1.jsonl");
    if !v1.exists() && std::env::var_os("UPDATE_EVENT_FIXTURE").is_some() {
        std::fs::create_dir_all(fixture_dir()).unwrap();
        let lines: Vec<String> = examples().iter().map(|e| serde_json::to_string(e).unwrap()).collect();
        std::fs::write(&v1, lines.join("\n") + "\n").unwrap();
    }
    let mut covered = BTreeSet::new();
    let mut versions: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .expect("engine/tests/data/events/ holds the stored event fixtures")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    versions.sort();
    assert!(!versions.is_empty());
    for path in versions {
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let stored: serde_json::Value = serde_json::from_str(line).unwrap();
            let event: Event = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: no longer reads: {e}", path.display(), n + 1));
            let again = serde_json::to_value(&event).unwrap();
            assert_eq!(again, stored, "{}:{}: writes out differently", path.display(), n + 1);
            // And folds without panicking into a state, as a replay would.
            let mut state = State::new();
            apply(&mut state, &event, at("2012-04-02T09:30:00+08:00"));
            covered.insert(event.kind().to_string());
        }
    }
    let all: BTreeSet<String> = ALL_KINDS.iter().map(|k| k.to_string()).collect();
    assert_eq!(covered, all, "every kind is in some fixture version");
}

#[test]
fn today_writes_the_first_version_exactly() {
    // Until the encoding changes on purpose (then: a v2 file, v1 kept), today's code writes
    // exactly what v1 holds.
    let text = std::fs::read_to_string(fixture_dir().join("v1.jsonl")).unwrap();
    let today: Vec<String> = examples().iter().map(|e| serde_json::to_string(e).unwrap()).collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), today);
}
