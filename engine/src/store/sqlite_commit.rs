//! The SQLite store's commit path for one commit (events, timers, counters, idempotency; a batch's
//! flow is `batch.rs`) and its row mappers, used by `sqlite.rs`'s `Store` implementation.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::Row;

use super::batch::{BatchWriter, LogHead};
use super::common::{map_sqlx, to_i64, to_u64};
use super::{
    Commit, CounterClaim, InstanceRecord, PolicyRecord, PrincipalRecord, StoreError, StoredEvent, TimerRecord,
    TimerState,
};

pub(super) async fn apply_commit(
    conn: &mut SqliteConnection,
    head: &LogHead,
    commit: &Commit,
) -> Result<Vec<StoredEvent>, StoreError> {
    insert_idempotency(conn, commit).await?;
    // Issue 10.3: a start goes through the group committer as a commit that creates its instance.
    let stored = match &commit.create {
        Some(instance) => insert_instance(conn, head, instance, commit).await?,
        None => super::batch::apply_body(conn, head, commit).await?,
    };
    if let Some(spawn) = &commit.spawn {
        insert_instance(conn, head, &spawn.instance, &spawn.first).await?;
    }
    Ok(stored)
}

pub(super) async fn insert_idempotency(conn: &mut SqliteConnection, commit: &Commit) -> Result<(), StoreError> {
    let Some(idem) = &commit.idempotency else {
        return Ok(());
    };
    if !conn.insert_idempotency(&[(commit, idem)]).await? {
        return Err(StoreError::DuplicateKey { principal: idem.principal.clone(), key: idem.key.clone() });
    }
    Ok(())
}

/// Writes a new instance's row and its first commit (without its idempotency record).
pub(super) async fn insert_instance(
    conn: &mut SqliteConnection,
    head: &LogHead,
    instance: &InstanceRecord,
    first: &Commit,
) -> Result<Vec<StoredEvent>, StoreError> {
    let published: Option<i64> = sqlx::query_scalar("SELECT 1 FROM policies WHERE name = ? AND hash = ?")
        .bind(&instance.policy_name)
        .bind(&instance.policy_hash)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    if published.is_none() {
        return Err(StoreError::PolicyNotFound {
            name: instance.policy_name.clone(),
            hash: instance.policy_hash.clone(),
        });
    }
    let inserted = sqlx::query(
        "INSERT INTO instances
             (id, policy_name, policy_hash, version, status, snapshot, created_at, updated_at)
             VALUES (?, ?, ?, 0, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&instance.id)
    .bind(&instance.policy_name)
    .bind(&instance.policy_hash)
    .bind(&instance.status)
    .bind(json_text(&instance.snapshot)?)
    .bind(micros(instance.created_at))
    .bind(micros(instance.updated_at))
    .execute(&mut *conn)
    .await
    .map_err(map_sqlx)?
    .rows_affected();
    if inserted == 0 {
        return Err(StoreError::InstanceExists { id: instance.id.clone() });
    }
    super::batch::apply_body(conn, head, first).await
}

/// Raises a counter by one unless that takes it past its cap: a compare-and-set in the
/// transaction, so two commits cannot both take the last place (R3.7).
pub(super) async fn raise_counter(conn: &mut SqliteConnection, claim: &CounterClaim) -> Result<(), StoreError> {
    let cap = claim.cap.map_or(Ok(i64::MAX), |c| to_i64(c, "cap"))?;
    if cap < 1 {
        return Err(StoreError::CounterFull { key: claim.key.clone(), cap: 0 });
    }
    let raised = sqlx::query(
        "INSERT INTO counters (key, value) VALUES (?, 1)
         ON CONFLICT (key) DO UPDATE SET value = counters.value + 1 WHERE counters.value < ?",
    )
    .bind(&claim.key)
    .bind(cap)
    .execute(&mut *conn)
    .await
    .map_err(map_sqlx)?
    .rows_affected();
    if raised != 1 {
        return Err(StoreError::CounterFull { key: claim.key.clone(), cap: claim.cap.unwrap_or(u64::MAX) });
    }
    Ok(())
}

/// Commits on success, rolls back on failure.
pub(super) async fn finish<T>(
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    result: Result<T, StoreError>,
) -> Result<T, StoreError> {
    match result {
        Ok(value) => {
            tx.commit().await.map_err(map_sqlx)?;
            Ok(value)
        }
        Err(err) => {
            // The error that matters is the first; a failed rollback ends with the connection.
            let _ = tx.rollback().await;
            Err(err)
        }
    }
}

/// Fails a whole batch: rolls the transaction back and gives every commit the error.
pub(super) async fn abort(
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    err: StoreError,
    n: usize,
) -> Vec<Result<Vec<StoredEvent>, StoreError>> {
    let _ = tx.rollback().await;
    vec![Err(err); n]
}

// ---- rows ----

pub(super) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(super) fn time_at(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    let value: i64 = row.try_get(column).map_err(map_sqlx)?;
    from_micros(value, column)
}

pub(super) fn from_micros(value: i64, column: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(value)
        .ok_or_else(|| StoreError::Corrupt(format!("`{column}` holds no valid time: {value}")))
}

pub(super) fn json_text(value: &Value) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("unencodable JSON: {e}")))
}

pub(super) fn parse_json(row: &SqliteRow, column: &str) -> Result<Value, StoreError> {
    let text: String = row.try_get(column).map_err(map_sqlx)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("`{column}` holds no valid JSON: {e}")))
}

pub(super) fn policy_row(row: &SqliteRow) -> Result<PolicyRecord, StoreError> {
    Ok(PolicyRecord {
        name: row.try_get("name").map_err(map_sqlx)?,
        hash: row.try_get("hash").map_err(map_sqlx)?,
        version_label: row.try_get("version_label").map_err(map_sqlx)?,
        source: row.try_get("source").map_err(map_sqlx)?,
        ir: parse_json(row, "ir")?,
        published_at: time_at(row, "published_at")?,
    })
}

pub(super) fn instance_row(row: &SqliteRow) -> Result<InstanceRecord, StoreError> {
    Ok(InstanceRecord {
        id: row.try_get("id").map_err(map_sqlx)?,
        policy_name: row.try_get("policy_name").map_err(map_sqlx)?,
        policy_hash: row.try_get("policy_hash").map_err(map_sqlx)?,
        version: to_u64(row.try_get("version").map_err(map_sqlx)?, "version")?,
        status: row.try_get("status").map_err(map_sqlx)?,
        snapshot: parse_json(row, "snapshot")?,
        snapshot_version: to_u64(row.try_get("snapshot_version").map_err(map_sqlx)?, "snapshot_version")?,
        created_at: time_at(row, "created_at")?,
        updated_at: time_at(row, "updated_at")?,
    })
}

pub(super) fn event_row(row: &SqliteRow) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        instance: row.try_get("instance").map_err(map_sqlx)?,
        seq: to_u64(row.try_get("seq").map_err(map_sqlx)?, "seq")?,
        at: time_at(row, "at")?,
        actor: row.try_get("actor").map_err(map_sqlx)?,
        role: row.try_get("role").map_err(map_sqlx)?,
        kind: row.try_get("kind").map_err(map_sqlx)?,
        payload: parse_json(row, "payload")?,
        prev_hash: row.try_get("prev_hash").map_err(map_sqlx)?,
        hash: row.try_get("hash").map_err(map_sqlx)?,
    })
}

pub(super) fn principal_row(row: &SqliteRow) -> Result<PrincipalRecord, StoreError> {
    let roles: String = row.try_get("roles").map_err(map_sqlx)?;
    Ok(PrincipalRecord {
        name: row.try_get("name").map_err(map_sqlx)?,
        office: row.try_get("office").map_err(map_sqlx)?,
        roles: serde_json::from_str(&roles)
            .map_err(|e| StoreError::Corrupt(format!("`roles` holds no JSON list of names: {e}")))?,
        created_at: time_at(row, "created_at")?,
    })
}

pub(super) fn timer_row(row: &SqliteRow) -> Result<TimerRecord, StoreError> {
    let state: String = row.try_get("state").map_err(map_sqlx)?;
    let lease_until: Option<i64> = row.try_get("lease_until").map_err(map_sqlx)?;
    Ok(TimerRecord {
        id: row.try_get("id").map_err(map_sqlx)?,
        instance: row.try_get("instance").map_err(map_sqlx)?,
        node: row.try_get("node").map_err(map_sqlx)?,
        kind: row.try_get("kind").map_err(map_sqlx)?,
        due_at: time_at(row, "due_at")?,
        state: TimerState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown timer state `{state}`")))?,
        lease_owner: row.try_get("lease_owner").map_err(map_sqlx)?,
        lease_until: lease_until.map(|v| from_micros(v, "lease_until")).transpose()?,
        fence: row.try_get("fence").map_err(map_sqlx)?,
        payload: parse_json(row, "payload")?,
    })
}
