//! Issue 12.3 (begun): verification never trusts the stored state. With the server's database
//! edited behind its back — the instance's snapshot changed (a parameter, as a hostile
//! administrator would type another), then its status — `history/verify` replays the events and
//! names the first field where the row differs, on SQLite and on PostgreSQL.

use reqwest::StatusCode;
use serde_json::json;

use crate::http::{Backend, Env};

const POLICY: &str = r#"policy 伪造演练 {
  param 户数: int
  role 承办
  role 审核科
  step 受理: task { by 承办 }
  step 审核: approval { by 审核科 after 受理 }
}"#;

/// Runs `sqlite` or `postgres` on the server's database, behind the store's back.
async fn edit(env: &Env, sqlite: &str, postgres: &str) {
    match &env.backend {
        Backend::Sqlite { store, .. } => {
            crate::http::unpack_snapshots(store).await;
            let done = sqlx::query(sqlx::AssertSqlSafe(sqlite.to_string())).execute(store.writer_pool()).await.unwrap();
            assert_eq!(done.rows_affected(), 1);
        }
        Backend::Postgres { store, .. } => {
            let done = sqlx::query(sqlx::AssertSqlSafe(postgres.to_string())).execute(store.pool()).await.unwrap();
            assert_eq!(done.rows_affected(), 1);
        }
    }
}

async fn issue_12_3_a_forged_snapshot_or_status_is_named(env: Env) {
    let published = env
        .client
        .post(format!("{}/v1/policies", env.base))
        .bearer_auth(&env.admin)
        .header("content-type", "text/plain")
        .body(POLICY)
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), StatusCode::CREATED);
    let clerk = env.token("孙", "民政科", &["承办"]).await;
    let start = json!({ "policy": "伪造演练", "params": { "户数": 1600 }, "id": "forge-1" });
    assert_eq!(env.post("/v1/instances", &clerk, start).await.status, StatusCode::CREATED);
    let done = json!({ "action": "complete", "data": { "report": "已受理" } });
    assert_eq!(env.act("forge-1", "受理", &clerk, done).await.status, StatusCode::OK);
    let path = "/v1/instances/forge-1/history/verify";
    let verified = env.get(path, &clerk).await.body;
    assert_eq!(verified["ok"], true, "{verified}");
    let n = verified["events"].as_u64().unwrap();
    assert_eq!(verified["message"], format!("{n} events verify, and the stored state is their replay"));

    // The snapshot's parameter changed: the chain still holds, the replay does not.
    edit(
        &env,
        r#"UPDATE snapshots SET body = json_set(body, '$.params.户数.number', '9999') WHERE instance = 'forge-1'"#,
        r#"UPDATE snapshots SET body = jsonb_set(body, '{params,户数,number}', '"9999"') WHERE instance = 'forge-1'"#,
    )
    .await;
    let forged = env.get(path, &clerk).await.body;
    assert_eq!(forged["ok"], false, "{forged}");
    assert_eq!(
        (&forged["field"], &forged["expected"], &forged["found"]),
        (&json!("snapshot.params.户数.number"), &json!("\"1600\""), &json!("\"9999\"")),
        "{forged}"
    );
    assert_eq!(forged["first_bad_seq"], json!(null));
    edit(
        &env,
        r#"UPDATE snapshots SET body = json_set(body, '$.params.户数.number', '1600') WHERE instance = 'forge-1'"#,
        r#"UPDATE snapshots SET body = jsonb_set(body, '{params,户数,number}', '"1600"') WHERE instance = 'forge-1'"#,
    )
    .await;
    assert_eq!(env.get(path, &clerk).await.body["ok"], true);
    // The status marked completed.
    edit(
        &env,
        "UPDATE instances SET status = 'completed' WHERE id = 'forge-1'",
        "UPDATE instances SET status = 'completed' WHERE id = 'forge-1'",
    )
    .await;
    let forged = env.get(path, &clerk).await.body;
    assert_eq!(
        (&forged["ok"], &forged["field"], &forged["expected"], &forged["found"]),
        (&json!(false), &json!("status"), &json!("running"), &json!("completed")),
        "{forged}"
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_3_a_forged_snapshot_or_status_is_named_on_sqlite() {
    issue_12_3_a_forged_snapshot_or_status_is_named(Env::sqlite(false).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_3_a_forged_snapshot_or_status_is_named_on_postgres() {
    if let Some(env) = Env::postgres_with("forgery", false).await {
        issue_12_3_a_forged_snapshot_or_status_is_named(env).await;
    }
}
