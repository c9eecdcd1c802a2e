//! The PostgreSQL store's counters and transactions' ends for the commit path (whose flow is
//! `batch.rs`, its statements `postgres_batch.rs`) and its row mappers.

use super::common::{map_sqlx, to_u64};
use super::{InstanceRecord, PolicyRecord, PrincipalRecord, StoreError, StoredEvent, TimerRecord, TimerState};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::Row;

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
    Ok(InstanceRecord { snapshot: row.try_get::<Value, _>("snapshot").map_err(map_sqlx)?, ..instance_fields(row)? })
}

/// A row's record without its snapshot (`Null`), which the caller reads its own way.
pub(super) fn instance_fields(row: &PgRow) -> Result<InstanceRecord, StoreError> {
    Ok(InstanceRecord {
        id: row.try_get("id").map_err(map_sqlx)?,
        policy_name: row.try_get("policy_name").map_err(map_sqlx)?,
        policy_hash: row.try_get("policy_hash").map_err(map_sqlx)?,
        version: to_u64(row.try_get("version").map_err(map_sqlx)?, "version")?,
        status: row.try_get("status").map_err(map_sqlx)?,
        snapshot: Value::Null,
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
        payload: std::sync::Arc::new(row.try_get::<Value, _>("payload").map_err(map_sqlx)?),
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
