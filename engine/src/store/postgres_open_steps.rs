//! Issue 10.6 on PostgreSQL: the inbox read from the open-step table (the counts the triggers keep,
//! each key's index range from the page's start or the cursor, merged) and the table built for a
//! database from before it (the commits' rows are written in [`super::batch`]).

use sqlx::AssertSqlSafe;

use super::common::{inbox_page, map_sqlx, to_i64, to_u64};
use super::postgres::PgStore;
use super::{InboxQuery, OpenStepRef, OpenStepRow, Page, StoreError};

impl PgStore {
    pub(super) async fn read_inbox(&self, query: &InboxQuery) -> Result<Page<OpenStepRef>, StoreError> {
        let (limit, offset) = super::common::inbox_window(query)?;
        let empty = Page { items: Vec::new(), total: 0, page: query.page, page_size: query.page_size };
        if query.readers.is_empty() {
            return Ok(empty);
        }
        // How many under each key, as the commits kept them (migration 0015).
        let counts: Vec<(String, i64)> =
            sqlx::query_as("SELECT reader, n FROM open_step_counts WHERE reader = ANY($1::text[]) AND n > 0")
                .bind(&query.readers)
                .fetch_all(&self.pool)
                .await
                .map_err(map_sqlx)?;
        let total: i64 = match counts.len() {
            0 => return Ok(empty),
            1 => counts[0].1,
            // A step may be listed under two of the keys: count each once.
            _ => sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT DISTINCT instance, node FROM open_steps
                                       WHERE reader = ANY($1::text[])) AS listed",
            )
            .bind(&query.readers)
            .fetch_one(&self.pool)
            .await
            .map_err(map_sqlx)?,
        };
        // The first `offset + limit` of each key that has any (after the cursor: `$3` NULL for
        // none), in index order, merged.
        let keys: Vec<&str> = counts.iter().map(|(k, _)| k.as_str()).collect();
        let after = query.after.as_ref().map(super::common::cursor_key);
        // Two statements, not one with `$3 IS NULL OR …`: the index range must be the plan's.
        let sql = format!(
            "SELECT o.due_key, o.instance, o.node FROM UNNEST($1::text[]) AS k (reader)
             CROSS JOIN LATERAL (SELECT due_key, instance, node FROM open_steps
                                 WHERE reader = k.reader{}
                                 ORDER BY due_key, instance, node LIMIT $2) AS o",
            if after.is_some() { " AND (due_key, instance, node) > ($3, $4, $5)" } else { "" }
        );
        let mut rows = sqlx::query_as(AssertSqlSafe(sql)).bind(&keys).bind(offset + limit);
        if let Some((due, instance, node)) = after {
            rows = rows.bind(due).bind(instance).bind(node);
        }
        let rows: Vec<(i64, String, String)> = rows.fetch_all(&self.pool).await.map_err(map_sqlx)?;
        let items = inbox_page(rows, offset, limit)?;
        Ok(Page { items, total: to_u64(total, "count")?, page: query.page, page_size: query.page_size })
    }

    pub(super) async fn are_open_steps_built(&self) -> Result<bool, StoreError> {
        let built: Option<i32> = sqlx::query_scalar("SELECT 1 FROM derived_builds WHERE name = 'open_steps'")
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?;
        Ok(built.is_some())
    }

    pub(super) async fn write_open_steps(
        &self,
        instance: &str,
        version: u64,
        rows: &[OpenStepRow],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        // The row lock: a commit to the instance waits until these rows are in.
        let now: Option<i64> = sqlx::query_scalar("SELECT version FROM instances WHERE id = $1 FOR UPDATE")
            .bind(instance)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        if now != Some(to_i64(version, "version")?) {
            return Ok(false);
        }
        // Then the log's lock, as a commit takes them (`batch::UnderLock`): the counts' rows the
        // triggers update are written only under it, by every writer of the table.
        super::postgres_batch::lock_log(&mut tx).await?;
        sqlx::query("DELETE FROM open_steps WHERE instance = $1")
            .bind(instance)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        let rows: Vec<(&str, &OpenStepRow)> = rows.iter().map(|r| (instance, r)).collect();
        if !rows.is_empty() {
            super::batch::BatchWriter::replace_open_steps(&mut self.batch_writer(&mut tx), &[], &rows).await?;
        }
        tx.commit().await.map_err(map_sqlx)?;
        Ok(true)
    }

    pub(super) async fn note_open_steps_built(&self) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO derived_builds (name, built_at) VALUES ('open_steps', now()) ON CONFLICT (name) DO NOTHING",
        )
        .execute(&self.pool)
        .await
        .map_err(map_sqlx)?;
        Ok(())
    }
}
