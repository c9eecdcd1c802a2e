//! The PostgreSQL store's commit path for one commit (events, timers, counters, idempotency; a
//! batch's flow is `batch.rs`) and its row mappers, used by `postgres.rs`'s `Store` implementation.

use super::batch::{BatchWriter, LogHead};
use super::common::{map_sqlx, to_i64, to_u64};
use super::{
    Commit, CounterClaim, InstanceRecord, PolicyRecord, PrincipalRecord, StoreError, StoredEvent, TimerRecord,
    TimerState,
};
use crate::audit::truncate_to_micros;
use serde_json::Value;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::types::Json;
use sqlx::Row;

pub(super) async fn apply_commit(
    conn: &mut PgConnection,
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

pub(super) async fn insert_idempotency(conn: &mut PgConnection, commit: &Commit) -> Result<(), StoreError> {
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
    conn: &mut PgConnection,
    head: &LogHead,
    instance: &InstanceRecord,
    first: &Commit,
) -> Result<Vec<StoredEvent>, StoreError> {
    let published: Option<i32> = sqlx::query_scalar("SELECT 1 FROM policies WHERE name = $1 AND hash = $2")
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
             VALUES ($1, $2, $3, 0, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&instance.id)
    .bind(&instance.policy_name)
    .bind(&instance.policy_hash)
    .bind(&instance.status)
    .bind(Json(&instance.snapshot))
    .bind(truncate_to_micros(instance.created_at))
    .bind(truncate_to_micros(instance.updated_at))
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
pub(super) async fn raise_counter(conn: &mut PgConnection, claim: &CounterClaim) -> Result<(), StoreError> {
    let cap = claim.cap.map_or(Ok(i64::MAX), |c| to_i64(c, "cap"))?;
    if cap < 1 {
        return Err(StoreError::CounterFull { key: claim.key.clone(), cap: 0 });
    }
    let raised = sqlx::query(
        "INSERT INTO counters (key, value) VALUES ($1, 1)
         ON CONFLICT (key) DO UPDATE SET value = counters.value + 1 WHERE counters.value < $2",
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
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
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

// ---- rows ----

pub(super) fn policy_row(row: &PgRow) -> Result<PolicyRecord, StoreError> {
    Ok(PolicyRecord {
        name: row.try_get("name").map_err(map_sqlx)?,
        hash: row.try_get("hash").map_err(map_sqlx)?,
        version_label: row.try_get("version_label").map_err(map_sqlx)?,
        source: row.try_get("source").map_err(map_sqlx)?,
        ir: row.try_get::<Value, _>("ir").map_err(map_sqlx)?,
        published_at: row.try_get("published_at").map_err(map_sqlx)?,
    })
}

pub(super) fn instance_row(row: &PgRow) -> Result<InstanceRecord, StoreError> {
    Ok(InstanceRecord {
        id: row.try_get("id").map_err(map_sqlx)?,
        policy_name: row.try_get("policy_name").map_err(map_sqlx)?,
        policy_hash: row.try_get("policy_hash").map_err(map_sqlx)?,
        version: to_u64(row.try_get("version").map_err(map_sqlx)?, "version")?,
        status: row.try_get("status").map_err(map_sqlx)?,
        snapshot: row.try_get::<Value, _>("snapshot").map_err(map_sqlx)?,
        snapshot_version: to_u64(row.try_get("snapshot_version").map_err(map_sqlx)?, "snapshot_version")?,
        created_at: row.try_get("created_at").map_err(map_sqlx)?,
        updated_at: row.try_get("updated_at").map_err(map_sqlx)?,
    })
}

pub(super) fn event_row(row: &PgRow) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        instance: row.try_get("instance").map_err(map_sqlx)?,
        seq: to_u64(row.try_get("seq").map_err(map_sqlx)?, "seq")?,
        at: row.try_get("at").map_err(map_sqlx)?,
        actor: row.try_get("actor").map_err(map_sqlx)?,
        role: row.try_get("role").map_err(map_sqlx)?,
        kind: row.try_get("kind").map_err(map_sqlx)?,
        payload: row.try_get::<Value, _>("payload").map_err(map_sqlx)?,
        prev_hash: row.try_get("prev_hash").map_err(map_sqlx)?,
        hash: row.try_get("hash").map_err(map_sqlx)?,
    })
}

pub(super) fn principal_row(row: &PgRow) -> Result<PrincipalRecord, StoreError> {
    Ok(PrincipalRecord {
        name: row.try_get("name").map_err(map_sqlx)?,
        office: row.try_get("office").map_err(map_sqlx)?,
        roles: row.try_get("roles").map_err(map_sqlx)?,
        created_at: row.try_get("created_at").map_err(map_sqlx)?,
    })
}

pub(super) fn timer_row(row: &PgRow) -> Result<TimerRecord, StoreError> {
    let state: String = row.try_get("state").map_err(map_sqlx)?;
    Ok(TimerRecord {
        id: row.try_get("id").map_err(map_sqlx)?,
        instance: row.try_get("instance").map_err(map_sqlx)?,
        node: row.try_get("node").map_err(map_sqlx)?,
        kind: row.try_get("kind").map_err(map_sqlx)?,
        due_at: row.try_get("due_at").map_err(map_sqlx)?,
        state: TimerState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown timer state `{state}`")))?,
        lease_owner: row.try_get("lease_owner").map_err(map_sqlx)?,
        lease_until: row.try_get("lease_until").map_err(map_sqlx)?,
        fence: row.try_get("fence").map_err(map_sqlx)?,
        payload: row.try_get::<Value, _>("payload").map_err(map_sqlx)?,
    })
}
