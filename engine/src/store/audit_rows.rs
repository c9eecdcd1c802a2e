//! Issue 12: reading the global tree's rows, written once for both stores (the columns have the
//! same names and types there: `BIGINT`/`INTEGER`, `BYTEA`/`BLOB`, `TEXT`).

use sqlx::{ColumnIndex, Database, Decode, Row, Type};

use super::common::{map_sqlx, to_u64};
use chrono::{DateTime, Utc};

use super::{AuditCheckpointRecord, AuditEntry, AuditLeaf, AuditTree, LateRecord, LateStep, StoreError, StoredEvent};
use crate::audit::merkle::{empty_root, Frontier, Hash};

/// The tree from its last row (`idx`, `peaks`), or the empty tree when there is none.
pub(super) fn frontier_tree(last: Option<(i64, Option<Vec<u8>>)>) -> Result<AuditTree, StoreError> {
    let Some((last, peaks)) = last else {
        return Ok(AuditTree { size: 0, root: empty_root() });
    };
    let peaks = peaks.ok_or_else(|| StoreError::Corrupt(format!("audit leaf {last} carries no frontier")))?;
    let size = to_u64(last, "audit index")? + 1;
    let frontier = Frontier::from_parts(size, super::log_append::peaks_from_bytes(&peaks)?)
        .ok_or_else(|| StoreError::Corrupt(format!("the audit tree's peaks do not fit its size {size}")))?;
    Ok(AuditTree { size, root: frontier.root() })
}

/// A leaf from a row with `idx`, `instance`, `seq`, `leaf`.
pub(super) fn leaf_from<R>(row: &R) -> Result<AuditLeaf, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    R::Database: Database,
{
    let leaf: Vec<u8> = row.try_get("leaf").map_err(map_sqlx)?;
    let leaf: Hash = leaf.try_into().map_err(|_| StoreError::Corrupt("an audit leaf is not 32 bytes".into()))?;
    Ok(AuditLeaf {
        index: to_u64(row.try_get("idx").map_err(map_sqlx)?, "audit index")?,
        instance: row.try_get("instance").map_err(map_sqlx)?,
        seq: to_u64(row.try_get("seq").map_err(map_sqlx)?, "seq")?,
        leaf,
    })
}

/// A leaf and its event from a row of `audit_leaves LEFT JOIN events` (the event's columns are
/// NULL when its row is gone; `hash` is never NULL in a row that exists).
pub(super) fn entry_from<R>(row: &R, event: fn(&R) -> Result<StoredEvent, StoreError>) -> Result<AuditEntry, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    R::Database: Database,
{
    let leaf = leaf_from(row)?;
    let hash: Option<String> = row.try_get("hash").map_err(map_sqlx)?;
    let event = match hash {
        Some(_) => Some(event(row)?),
        None => None,
    };
    Ok(AuditEntry { leaf, event })
}

/// How a store reads a time column (SQLite: microseconds; PostgreSQL: `timestamptz`).
pub(super) type TimeAt<R> = fn(&R, &str) -> Result<DateTime<Utc>, StoreError>;

/// A checkpoint from a row with `size`, `root`, `note`, `made_at`.
pub(super) fn checkpoint_from<R>(row: &R, time: TimeAt<R>) -> Result<AuditCheckpointRecord, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let root: Vec<u8> = row.try_get("root").map_err(map_sqlx)?;
    Ok(AuditCheckpointRecord {
        size: to_u64(row.try_get("size").map_err(map_sqlx)?, "tree size")?,
        root: root.try_into().map_err(|_| StoreError::Corrupt("a checkpoint's root is not 32 bytes".into()))?,
        note: row.try_get("note").map_err(map_sqlx)?,
        made_at: time(row, "made_at")?,
    })
}

/// A breach from a row of `late_steps` joined with its instance's `policy_name`.
pub(super) fn late_from<R>(row: &R, time: TimeAt<R>) -> Result<LateRecord, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(LateRecord {
        instance: row.try_get("instance").map_err(map_sqlx)?,
        policy: row.try_get("policy_name").map_err(map_sqlx)?,
        step: LateStep {
            node: row.try_get("node").map_err(map_sqlx)?,
            role: row.try_get("role").map_err(map_sqlx)?,
            office: row.try_get("office").map_err(map_sqlx)?,
            due_at: time(row, "due_at")?,
            late_at: time(row, "late_at")?,
        },
    })
}

/// The breaches of a period, in time order; numbered placeholders written with `placeholder`
/// (`$` on PostgreSQL, `?` on SQLite): from, to, limit.
pub(super) fn late_steps_sql(placeholder: char) -> String {
    format!(
        "SELECT l.instance, i.policy_name, l.node, l.role, l.office, l.due_at, l.late_at
         FROM late_steps l JOIN instances i ON i.id = l.instance
         WHERE l.late_at >= {p}1 AND l.late_at < {p}2
         ORDER BY l.late_at, l.instance, l.node, l.role LIMIT {p}3",
        p = placeholder
    )
}
