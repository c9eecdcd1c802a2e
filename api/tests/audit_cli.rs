//! Issue 12.4: `civicflow audit export` and `civicflow audit verify` as an auditor runs them: a
//! bundle written from a database with no server running, checked with the public key alone;
//! a changed byte and the wrong key refused with exit 1; the golden bundle of docs/audit/.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use civicflow_engine::calendar::Calendar;
use civicflow_engine::clock::SystemClock;
use civicflow_engine::core::{Action, Actor};
use civicflow_engine::runtime::Runtime;
use civicflow_engine::store::sqlite::SqliteStore;
use civicflow_engine::store::{GroupCommitConfig, GroupCommitter};

const POLICY: &str = r#"policy 导出演练 {
  role 承办
  role 审核科
  step 受理: task { by 承办 }
  step 审核: approval { by 审核科 after 受理 }
}"#;

fn civicflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_civicflow")).args(args).output().unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// A database with two instances, a signed checkpoint, and the key file beside it.
async fn database(dir: &Path) -> String {
    let db = dir.join("civicflow.db");
    let store = Arc::new(SqliteStore::open(&db).await.unwrap());
    let (committer, task) = GroupCommitter::spawn(store.clone(), GroupCommitConfig::default());
    let calendar = Arc::new(Calendar::chinese().unwrap());
    let rt = Runtime::new(store.clone(), committer, Arc::new(SystemClock), calendar, "test".into());
    rt.publish(POLICY).await.unwrap();
    let clerk = Actor { principal: "孙".into(), office: "民政科".into(), role: "承办".into() };
    let reviewer = Actor { principal: "周".into(), office: "审核科".into(), role: "审核科".into() };
    for id in ["e-1", "e-2"] {
        rt.start(id, "导出演练", None, &clerk, BTreeMap::new(), None).await.unwrap();
        let done = Action::Complete { report: "已受理".into() };
        rt.act(id, &clerk, "受理", done, None, None).await.unwrap();
    }
    rt.act("e-1", &reviewer, "审核", Action::Approve { comment: Some("同意".into()) }, None, None).await.unwrap();
    let key = civicflow::audit::key::load_or_create(&dir.join("civicflow.db.audit-key"), "test.local/audit").unwrap();
    rt.make_checkpoint(&key.signer).await.unwrap().unwrap();
    std::fs::write(dir.join("key.pub"), key.signer.verifier().to_key_text() + "\n").unwrap();
    drop(rt);
    let _ = task.await;
    store.close().await;
    db.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_4_a_bundle_exported_offline_verifies_with_the_key_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path()).await;
    let key = dir.path().join("key.pub").display().to_string();
    let all = dir.path().join("all.jsonl").display().to_string();
    let out = civicflow(&["audit", "export", "--database", &db, "--out", &all]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let n = std::fs::read_to_string(&all).unwrap().lines().count() - 1;
    assert_eq!(text(&out.stdout), format!("{all}: {n} leaves (the whole log) against the checkpoint of {n} leaves\n"));
    let out = civicflow(&["audit", "verify", &all, "--key", &key]);
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (
            Some(0),
            format!("ok: {n} events of 2 instance(s) verify against the checkpoint of {n} leaves signed by test.local/audit\n")
        )
    );

    let one = dir.path().join("e-2.jsonl").display().to_string();
    let out = civicflow(&["audit", "export", "--database", &db, "--instance", "e-2", "--out", &one]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let e2 = std::fs::read_to_string(&one).unwrap().lines().count() - 1;
    assert!(text(&out.stdout).contains(&format!("{e2} leaves with their proofs")), "{}", text(&out.stdout));
    assert_eq!(civicflow(&["audit", "verify", &one, "--key", &key]).status.code(), Some(0));

    // A changed byte in the bundle: which event, which field; exit 1.
    let bundle = std::fs::read_to_string(&one).unwrap();
    let changed = dir.path().join("changed.jsonl");
    std::fs::write(&changed, bundle.replacen(r#""actor":"孙""#, r#""actor":"吴""#, 1)).unwrap();
    let out = civicflow(&["audit", "verify", changed.to_str().unwrap(), "--key", &key]);
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert!(report.starts_with("FAIL event e-2/1 (leaf "), "{report}");
    assert!(report.contains("field `actor` is `吴` in the event but `孙` in its encoding"), "{report}");
    // Another key: nothing trusted.
    let golden_key = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/audit/example-key.pub");
    let out = civicflow(&["audit", "verify", &one, "--key", golden_key]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).starts_with("FAIL checkpoint: the note carries no signature by"),
        "{}",
        text(&out.stdout)
    );
    // Bad input: exit 2 with the reason.
    let out = civicflow(&["audit", "export", "--database", &db, "--instance", "nope", "--out", &one]);
    assert_eq!((out.status.code(), text(&out.stderr)), (Some(2), "error: no instance `nope` in the log\n".into()));
    let out = civicflow(&["audit", "verify", &one, "--key", "not a key"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_golden_bundle_verifies_from_the_command_line() {
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/audit");
    let out = civicflow(&[
        "audit",
        "verify",
        &format!("{docs}/example-bundle.jsonl"),
        "--key",
        &format!("{docs}/example-key.pub"),
    ]);
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (
            Some(0),
            "ok: 3 events of 1 instance(s) verify against the checkpoint of 5 leaves signed by civicflow.example/audit\n"
                .to_string()
        )
    );
}
