//! Issue 12: histories an outsider checks offline. A server on SQLite and on PostgreSQL signs
//! checkpoints of its global tree; its database is then edited behind its back as a hostile
//! administrator would — a snapshot changed, a tail rewritten with recomputed chain hashes
//! (`INSERT OR REPLACE` on SQLite), a middle event deleted, an end cut with the version lowered,
//! and finally the log itself rewritten and re-signed with the stolen key — and the offline verifier (`audit export` + `audit verify`) and the witness
//! each name what was done, and where.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use civicflow::audit::export::export;
use civicflow::audit::witness::{witness, WitnessError, Witnessed};
use civicflow_engine::audit::bundle::{self, Kept, Scope};
use civicflow_engine::audit::merkle::{self, Hash};
use civicflow_engine::audit::note::{base64_decode, Checkpoint, NoteSigner, NoteVerifier};
use civicflow_engine::audit::{self, ChainedEvent};
use civicflow_engine::calendar::Calendar;
use civicflow_engine::clock::SystemClock;
use civicflow_engine::runtime::Runtime;
use civicflow_engine::store::{GroupCommitConfig, GroupCommitter};

use crate::http::{Backend, Env};

const POLICY: &str = r#"policy 审计演练 {
  role 承办
  role 审核科
  step 受理: task { by 承办 }
  step 审核: approval { by 审核科 after 受理 }
}"#;

/// Runs each statement on the server's database, behind the store's back.
async fn edit(env: &Env, sqlite: &[String], postgres: &[String]) {
    match &env.backend {
        Backend::Sqlite { store, .. } => {
            crate::http::unpack_snapshots(store).await;
            for sql in sqlite {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(store.writer_pool()).await.unwrap();
            }
        }
        Backend::Postgres { store, .. } => {
            for sql in postgres {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(store.pool()).await.unwrap();
            }
        }
    }
}

/// A runtime of its own on the server's store (an exporter or a forger starts with nothing
/// remembered).
fn fresh_runtime(env: &Env) -> Runtime {
    let store = env.server.state.store.clone();
    let (committer, _task) = GroupCommitter::spawn(store.clone(), GroupCommitConfig::default());
    Runtime::new(store, committer, Arc::new(SystemClock), Arc::new(Calendar::chinese().unwrap()), "auditor".into())
}

/// Waits until the server has signed a checkpoint of its whole tree; returns it.
async fn signed_tree(env: &Env, key: &NoteVerifier) -> Checkpoint {
    let size = env.server.state.store.audit_tree().await.unwrap().size;
    for _ in 0..200 {
        let note = env.client.get(format!("{}/v1/audit/checkpoint", env.base)).send().await.unwrap();
        if note.status() == StatusCode::OK {
            let cp = Checkpoint::open(&note.text().await.unwrap(), key).unwrap();
            if cp.size == size {
                return cp;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no checkpoint of {size} leaves within 10 s");
}

/// The findings of a bundle of `scope` exported now, checked against `key` (and `kept`).
async fn findings(env: &Env, scope: Scope, key: &NoteVerifier, kept: Option<&Kept>) -> Vec<String> {
    let mut out = Vec::new();
    export(&fresh_runtime(env), env.server.state.store.as_ref(), scope, None, &mut out, |_| {}).await.unwrap();
    let report = bundle::verify(&String::from_utf8(out).unwrap(), key, kept);
    assert!(report.checkpoint.is_some(), "{:?}", report.findings);
    report.findings.iter().map(ToString::to_string).collect()
}

fn instance(id: &str) -> Scope {
    Scope { instance: Some(id.into()), ..Scope::default() }
}

/// `(leaf index, seq)` of an instance's events in the log.
async fn leaves_of(env: &Env, id: &str) -> Vec<(u64, u64)> {
    env.server.state.store.audit_leaves_of(id).await.unwrap().iter().map(|l| (l.index, l.seq)).collect()
}

async fn issue_12_forgeries_are_named_offline_and_by_the_witness(env: Env) {
    let published = env.post_text("/v1/policies", &env.admin, POLICY).await;
    assert_eq!(published.status, StatusCode::CREATED, "{}", published.body);
    let clerk = env.token("孙", "民政科", &["承办"]).await;
    let reviewer = env.token("周", "审核科", &["审核科"]).await;
    for id in ["a-1", "a-2", "a-3", "a-4"] {
        let start = json!({ "policy": "审计演练", "id": id });
        assert_eq!(env.post("/v1/instances", &clerk, start).await.status, StatusCode::CREATED);
        let done = json!({ "action": "complete", "data": { "report": format!("{id} 已受理") } });
        assert_eq!(env.act(id, "受理", &clerk, done).await.status, StatusCode::OK);
        let approve = json!({ "action": "approve", "comment": "同意" });
        assert_eq!(env.act(id, "审核", &reviewer, approve).await.status, StatusCode::OK);
    }
    // The key is open to anyone; so is the checkpoint it signs.
    let key_text = env.client.get(format!("{}/v1/audit/key", env.base)).send().await.unwrap().text().await.unwrap();
    let key = NoteVerifier::parse(&key_text).unwrap();
    assert_eq!(key.name(), civicflow::audit::key::DEFAULT_NAME);
    let cp = signed_tree(&env, &key).await;
    let leaves: Vec<Hash> =
        env.server.state.store.audit_leaves(0, 10_000).await.unwrap().iter().map(|l| l.leaf).collect();
    assert_eq!(cp.root, merkle::root(&leaves));

    // An event's proof, for whoever holds a token; checked against the checkpoint's root.
    let a1 = leaves_of(&env, "a-1").await;
    let (index, _) = a1[1];
    let proof = env.get("/v1/instances/a-1/history/2/proof", &clerk).await;
    assert_eq!(proof.status, StatusCode::OK, "{}", proof.body);
    assert_eq!((proof.body["index"].as_u64(), proof.body["size"].as_u64()), (Some(index), Some(cp.size)));
    let hashes: Vec<Hash> = proof.body["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| base64_decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect();
    let leaf: Hash = base64_decode(proof.body["leaf"].as_str().unwrap()).unwrap().try_into().unwrap();
    assert_eq!(leaf, leaves[index as usize]);
    assert!(merkle::verify_inclusion(&leaf, index, cp.size, &hashes, &cp.root));
    assert_eq!(Checkpoint::open(proof.body["checkpoint"].as_str().unwrap(), &key).unwrap(), cp);
    let anonymous = env.client.get(format!("{}/v1/instances/a-1/history/2/proof", env.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(env.get("/v1/instances/a-1/history/99/proof", &clerk).await.status, StatusCode::NOT_FOUND);
    let beyond = env.get(&format!("/v1/audit/proof/inclusion?index=0&size={}", cp.size + 1), &clerk).await;
    assert_eq!(beyond.status, StatusCode::NOT_FOUND);
    assert_eq!(beyond.body["detail"], format!("the tree has {} leaves, not {}", cp.size, cp.size + 1));

    // The witness keeps its first checkpoint; everything verifies offline.
    let kept = tempfile::tempdir().unwrap();
    let first = witness(&env.base, kept.path(), None, Some(&env.admin)).await.unwrap();
    assert_eq!(first, Witnessed::First(cp.clone()));
    assert_eq!(findings(&env, Scope::default(), &key, None).await, Vec::<String>::new());
    assert_eq!(findings(&env, instance("a-1"), &key, None).await, Vec::<String>::new());

    // 0. a-4's stored state edited (the chain and the log hold): the replay of its events says so.
    edit(
        &env,
        &["UPDATE snapshots SET body = json_set(body, '$.nodes.审核.status', 'open') WHERE instance = 'a-4'".into()],
        &["UPDATE snapshots SET body = jsonb_set(body, '{nodes,审核,status}', '\"open\"') WHERE instance = 'a-4'"
            .into()],
    )
    .await;
    let n4 = leaves_of(&env, "a-4").await.len();
    assert_eq!(
        findings(&env, instance("a-4"), &key, None).await,
        [format!(
            "instance a-4: the stored state differs from the replay of its first {n4} events at `snapshot.nodes.审核.status`: the events give \"done\", the row holds \"open\""
        )]
    );

    // 1. a-1's tail rewritten from its approval on — "同意" made "不同意" — with every chain hash
    // after it recomputed (on SQLite by `INSERT OR REPLACE`, which the append-only triggers let
    // through): the per-instance chain holds, the signed tree does not.
    let history = env.server.state.store.events("a-1", 0, 100).await.unwrap();
    let k = history.iter().position(|e| e.payload.to_string().contains("同意")).unwrap();
    let forged = {
        let mut f = history[k].clone();
        f.payload = serde_json::from_str(&f.payload.to_string().replace("同意", "不同意")).unwrap();
        f
    };
    let (target_index, target_seq) = a1[k];
    assert_eq!(target_seq, forged.seq);
    let mut prev: Hash = hex::decode(&forged.prev_hash).unwrap().try_into().unwrap();
    let (mut on_sqlite, mut on_postgres) =
        (vec![], vec!["ALTER TABLE events DISABLE TRIGGER events_append_only".to_string()]);
    for (j, e) in history[k..].iter().enumerate() {
        let e = if j == 0 { &forged } else { e };
        let hash = audit::event_hash(&prev, &e.fields());
        let (payload, prev_hex, hash_hex) =
            (e.payload.to_string().replace('\'', "''"), hex::encode(prev), hex::encode(hash));
        let seq = e.seq;
        on_sqlite.push(format!(
            "INSERT OR REPLACE INTO events (instance, seq, at, actor, role, kind, payload, prev_hash, hash)
             SELECT instance, seq, at, actor, role, kind, '{payload}', '{prev_hex}', '{hash_hex}' FROM events
             WHERE instance = 'a-1' AND seq = {seq}"
        ));
        on_postgres.push(format!(
            "UPDATE events SET payload = '{payload}'::jsonb, prev_hash = '{prev_hex}', hash = '{hash_hex}'
             WHERE instance = 'a-1' AND seq = {seq}"
        ));
        prev = hash;
    }
    edit(&env, &on_sqlite, &on_postgres).await;
    let n1 = history.len() as u64;
    assert_eq!(env.server.state.store.verify("a-1").await.unwrap(), n1, "the chain alone is fooled");
    let forged_a1 = findings(&env, instance("a-1"), &key, None).await;
    assert_eq!(
        forged_a1,
        [
            format!(
                "event a-1/{target_seq} (leaf {target_index}): its content no longer hashes to its leaf: the event was changed after it was logged"
            ),
            // The row was not rewritten: the forged events replay to another state.
            format!(
                "instance a-1: the stored state differs from the replay of its first {n1} events at `snapshot.nodes.审核.acts[0].text`: the events give \"不同意\", the row holds \"同意\""
            ),
        ]
    );

    // 2. a-2's second event deleted.
    let a2 = leaves_of(&env, "a-2").await;
    edit(
        &env,
        &["DROP TRIGGER events_no_delete".into(), "DELETE FROM events WHERE instance = 'a-2' AND seq = 2".into()],
        &["DELETE FROM events WHERE instance = 'a-2' AND seq = 2".into()],
    )
    .await;
    let deleted_a2 = findings(&env, instance("a-2"), &key, None).await;
    assert_eq!(
        deleted_a2,
        [
            format!("event a-2/2 (leaf {}): in the log, but its record is gone from the history (deleted)", a2[1].0),
            format!(
                "instance a-2: the stored state differs from the replay of its first {0} events at `version`: the events give {0}, the row holds {1}",
                a2.len() - 1,
                a2.len()
            ),
        ]
    );

    // 3. a-3's last two events deleted and its version lowered: the end cut.
    let a3 = leaves_of(&env, "a-3").await;
    let n = a3.len() as u64;
    edit(
        &env,
        &[
            format!("DELETE FROM events WHERE instance = 'a-3' AND seq >= {}", n - 1),
            format!("UPDATE instances SET version = {} WHERE id = 'a-3'", n - 2),
        ],
        &[
            format!("DELETE FROM events WHERE instance = 'a-3' AND seq >= {}", n - 1),
            format!("UPDATE instances SET version = {} WHERE id = 'a-3'", n - 2),
        ],
    )
    .await;
    let cut_a3 = findings(&env, instance("a-3"), &key, None).await;
    assert_eq!(
        cut_a3,
        [
            format!(
                "event a-3/{} (leaf {}): in the log, but its record is gone from the history (deleted)",
                n - 1,
                a3[n as usize - 2].0
            ),
            format!(
                "event a-3/{n} (leaf {}): in the log, but its record is gone from the history (deleted)",
                a3[n as usize - 1].0
            ),
            format!("instance a-3: its history was cut: events {} to {n} are in the log but not in the history", n - 1),
            // The row still holds the state the cut events made.
            format!(
                "instance a-3: the stored state differs from the replay of its first {} events at `snapshot.nodes.审核.closed_at`: the events give null, the row holds \"2012-03-21T01:00:00Z\"",
                n - 2
            ),
        ]
    );
    // The whole log's bundle names all three, in the log's order (it carries no instance's row).
    let all: Vec<String> =
        [forged_a1, deleted_a2, cut_a3].concat().into_iter().filter(|f| !f.contains("the stored state")).collect();
    assert_eq!(findings(&env, Scope::default(), &key, None).await, all);

    // 4. The log itself rewritten to match a-1's forged approval (and the row its replay), and re-signed with the key file
    // (stolen): the bundle alone is fooled; the witness and a kept checkpoint are not.
    let forged_leaf = merkle::leaf_hash(&audit::encode(&forged.fields()));
    let hex_leaf = hex::encode(forged_leaf);
    // The frontier the last leaf carries, recomputed too (the server checks it against the leaves).
    let mut frontier = merkle::Frontier::new();
    for (i, l) in leaves.iter().enumerate() {
        frontier.push(if i as u64 == target_index { forged_leaf } else { *l });
    }
    let peaks = hex::encode(frontier.peaks().concat());
    let top = cp.size - 1;
    edit(
        &env,
        &[
            "DROP TRIGGER audit_leaves_no_update".into(),
            format!("UPDATE audit_leaves SET leaf = X'{hex_leaf}' WHERE idx = {target_index}"),
            format!("UPDATE audit_leaves SET peaks = X'{peaks}' WHERE idx = {top}"),
            "UPDATE snapshots SET body = json_set(body, '$.nodes.审核.acts[0].text', '不同意') WHERE instance = 'a-1'".into(),
            "DELETE FROM audit_checkpoints".into(),
        ],
        &[
            "ALTER TABLE audit_leaves DISABLE TRIGGER audit_leaves_append_only".into(),
            format!("UPDATE audit_leaves SET leaf = decode('{hex_leaf}', 'hex') WHERE idx = {target_index}"),
            format!("UPDATE audit_leaves SET peaks = decode('{peaks}', 'hex') WHERE idx = {top}"),
            "UPDATE snapshots SET body = jsonb_set(body, '{nodes,审核,acts,0,text}', '\"不同意\"') WHERE instance = 'a-1'"
                .into(),
            "DELETE FROM audit_checkpoints".into(),
        ],
    )
    .await;
    let stolen = NoteSigner::parse(&std::fs::read_to_string(env.keys.path().join("audit.key")).unwrap()).unwrap();
    let forger = fresh_runtime(&env);
    // The server's own checkpoint loop, finding no checkpoint, may sign the rewritten tree first
    // (with the same key): either way the latest checkpoint now signs it.
    let resigned = match forger.make_checkpoint(&stolen).await.unwrap() {
        Some(made) => made,
        None => forger.latest_checkpoint().await.unwrap().unwrap(),
    };
    assert_eq!((resigned.size, resigned.root), (cp.size, frontier.root()));
    assert_ne!(resigned.root, cp.root);
    assert_eq!(findings(&env, instance("a-1"), &key, None).await, Vec::<String>::new(), "self-consistent");
    let kept_cp = Kept { size: cp.size, root: cp.root };
    assert_eq!(
        findings(&env, instance("a-1"), &key, Some(&kept_cp)).await,
        [format!("checkpoint: forked: a checkpoint kept before signs another root for {} leaves", cp.size)]
    );
    let caught = witness(&env.base, kept.path(), None, Some(&env.admin)).await.unwrap_err();
    assert!(matches!(caught, WitnessError::Forked { size } if size == cp.size), "{caught}");
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_forgeries_are_named_offline_and_by_the_witness_on_sqlite() {
    issue_12_forgeries_are_named_offline_and_by_the_witness(Env::sqlite(false).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_forgeries_are_named_offline_and_by_the_witness_on_postgres() {
    if let Some(env) = Env::postgres_with("audit", false).await {
        issue_12_forgeries_are_named_offline_and_by_the_witness(env).await;
    }
}
