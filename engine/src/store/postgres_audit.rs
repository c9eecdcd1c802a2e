//! Issue 12 on PostgreSQL: the global tree's reads, the signed checkpoints and the lateness index
//! (the commits' appends are in [`super::batch`]).

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Row};

use super::audit_rows::{checkpoint_from, entry_from, frontier_tree, late_from, late_steps_sql, leaf_from};
use super::common::{map_sqlx, to_i64, to_u64};
use super::postgres::PgStore;
#[allow(clippy::wildcard_imports, reason = "the row mappers")]
use super::postgres_commit::*;
use super::{AuditCheckpointRecord, AuditEntry, AuditLeaf, AuditTree, LateRecord, LateStep, StoreError, StoredEvent};
use crate::audit::truncate_to_micros;

impl PgStore {
    pub(super) async fn read_audit_tree(&self) -> Result<AuditTree, StoreError> {
        let row = sqlx::query("SELECT idx, peaks FROM audit_leaves ORDER BY idx DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?;
        match row {
            None => frontier_tree(None),
            Some(row) => {
                frontier_tree(Some((row.try_get("idx").map_err(map_sqlx)?, row.try_get("peaks").map_err(map_sqlx)?)))
            }
        }
    }

    pub(super) async fn append_backfill(&self, limit: u32) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        // The tree first: the commits' appends wait for this one.
        let _ = super::batch::BatchWriter::log_frontier(&mut self.batch_writer(&mut tx)).await?;
        let rows = sqlx::query(
            "SELECT e.instance, e.seq, e.at, e.actor, e.role, e.kind, e.payload, e.prev_hash, e.hash
             FROM audit_backfill b JOIN events e ON e.instance = b.instance AND e.seq = b.seq
             ORDER BY e.at, e.instance, e.seq LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        let events = rows.iter().map(event_row).collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&StoredEvent> = events.iter().collect();
        super::log_append::append_to_log(
            &mut self.batch_writer(&mut tx),
            &self.log_head,
            &refs,
            super::log_append::Append::LeavesOnly,
        )
        .await?;
        for e in &events {
            sqlx::query("DELETE FROM audit_backfill WHERE instance = $1 AND seq = $2")
                .bind(e.instance.as_str())
                .bind(to_i64(e.seq, "seq")?)
                .execute(&mut *tx)
                .await
                .map_err(map_sqlx)?;
        }
        tx.commit().await.map_err(map_sqlx)?;
        Ok(events.len() as u64)
    }

    pub(super) async fn read_audit_leaves(&self, from: u64, limit: u32) -> Result<Vec<AuditLeaf>, StoreError> {
        let rows =
            sqlx::query("SELECT idx, instance, seq, leaf FROM audit_leaves WHERE idx >= $1 ORDER BY idx LIMIT $2")
                .bind(to_i64(from, "audit index")?)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_sqlx)?;
        rows.iter().map(leaf_from).collect()
    }

    pub(super) async fn read_audit_entries(&self, from: u64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT l.idx, l.instance, l.seq, l.leaf, e.at, e.actor, e.role, e.kind, e.payload, e.prev_hash, e.hash
             FROM audit_leaves l LEFT JOIN events e ON e.instance = l.instance AND e.seq = l.seq
             WHERE l.idx >= $1 ORDER BY l.idx LIMIT $2",
        )
        .bind(to_i64(from, "audit index")?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx)?;
        rows.iter().map(|row| entry_from(row, event_row)).collect()
    }

    pub(super) async fn read_audit_leaves_of(&self, instance: &str) -> Result<Vec<AuditLeaf>, StoreError> {
        let rows = sqlx::query("SELECT idx, instance, seq, leaf FROM audit_leaves WHERE instance = $1 ORDER BY idx")
            .bind(instance)
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        rows.iter().map(leaf_from).collect()
    }

    pub(super) async fn insert_audit_checkpoint(&self, cp: AuditCheckpointRecord) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO audit_checkpoints (size, root, note, made_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (size) DO NOTHING",
        )
        .bind(to_i64(cp.size, "tree size")?)
        .bind(cp.root.as_slice())
        .bind(&cp.note)
        .bind(truncate_to_micros(cp.made_at))
        .execute(&self.pool)
        .await
        .map_err(map_sqlx)?;
        Ok(inserted.rows_affected() == 1)
    }

    pub(super) async fn read_latest_audit_checkpoint(&self) -> Result<Option<AuditCheckpointRecord>, StoreError> {
        let row = sqlx::query("SELECT size, root, note, made_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?;
        row.map(|row| checkpoint_from(&row, |row, c| row.try_get(c).map_err(map_sqlx))).transpose()
    }

    pub(super) async fn read_late_steps(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<LateRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(late_steps_sql('$')))
            .bind(truncate_to_micros(from))
            .bind(truncate_to_micros(to))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        rows.iter().map(|row| late_from(row, |row, c| row.try_get(c).map_err(map_sqlx))).collect()
    }

    pub(super) async fn read_late_steps_built(&self) -> Result<bool, StoreError> {
        let built: Option<i32> = sqlx::query_scalar("SELECT 1 FROM derived_builds WHERE name = 'late_steps'")
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?;
        Ok(built.is_some())
    }

    pub(super) async fn read_instances_with_breaches(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT DISTINCT instance FROM events WHERE kind = 'overdue' ORDER BY instance")
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)
    }

    pub(super) async fn write_late_steps(&self, instance: &str, rows: &[LateStep]) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let rows: Vec<(&str, &LateStep)> = rows.iter().map(|r| (instance, r)).collect();
        let result = super::batch::BatchWriter::insert_late_steps(&mut self.batch_writer(&mut tx), &rows).await;
        match result {
            Ok(()) => tx.commit().await.map_err(map_sqlx),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn write_late_steps_built(&self) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO derived_builds (name, built_at) VALUES ('late_steps', now()) ON CONFLICT (name) DO NOTHING",
        )
        .execute(&self.pool)
        .await
        .map_err(map_sqlx)?;
        Ok(())
    }

    pub(super) async fn read_event_leaf_indexes(&self, instance: &str) -> Result<Vec<(u64, Option<u64>)>, StoreError> {
        let rows: Vec<(i64, Option<i64>)> =
            sqlx::query_as("SELECT seq, log_index FROM events WHERE instance = $1 ORDER BY seq")
                .bind(instance)
                .fetch_all(&self.pool)
                .await
                .map_err(map_sqlx)?;
        rows.into_iter()
            .map(|(seq, index)| Ok((to_u64(seq, "seq")?, index.map(|i| to_u64(i, "audit index")).transpose()?)))
            .collect()
    }
}
