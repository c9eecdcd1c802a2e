//! Issue 10.6 on SQLite: the inbox read from the open-step table (the counts the triggers keep,
//! each key's index range from the page's start or the cursor, merged) and the table built for a
//! database from before it (the commits' rows are written in [`super::batch`]).

use chrono::Utc;
use sqlx::AssertSqlSafe;

use super::batch::BatchWriter;
use super::common::{inbox_page, map_sqlx, to_i64, to_u64};
use super::sqlite::SqliteStore;
use super::sqlite_commit::micros;
use super::sqlite_writer::ready;
use super::{InboxQuery, OpenStepRef, OpenStepRow, Page, StoreError};

impl SqliteStore {
    pub(super) async fn read_inbox(&self, query: &InboxQuery) -> Result<Page<OpenStepRef>, StoreError> {
        let (limit, offset) = super::common::inbox_window(query)?;
        let empty = Page { items: Vec::new(), total: 0, page: query.page, page_size: query.page_size };
        if query.readers.is_empty() {
            return Ok(empty);
        }
        let keys = serde_json::to_string(&query.readers)
            .map_err(|e| StoreError::Invalid(format!("unencodable reader keys: {e}")))?;
        // How many under each key, as the commits kept them (migration 0015).
        let counts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT reader, n FROM open_step_counts WHERE reader IN (SELECT value FROM json_each(?)) AND n > 0",
        )
        .bind(&keys)
        .fetch_all(&self.readers)
        .await
        .map_err(map_sqlx)?;
        let total: i64 = match counts.len() {
            0 => return Ok(empty),
            1 => counts[0].1,
            // A step may be listed under two of the keys: count each once.
            _ => sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT DISTINCT instance, node FROM open_steps
                                       WHERE reader IN (SELECT value FROM json_each(?)))",
            )
            .bind(&keys)
            .fetch_one(&self.readers)
            .await
            .map_err(map_sqlx)?,
        };
        // The first `offset + limit` of each key that has any (after the cursor), in index
        // order, merged.
        let after = query.after.as_ref().map(super::common::cursor_key);
        let one = format!(
            "SELECT * FROM (SELECT due_key, instance, node FROM open_steps WHERE reader = ?{}
             ORDER BY due_key, instance, node LIMIT ?)",
            if after.is_some() { " AND (due_key, instance, node) > (?, ?, ?)" } else { "" }
        );
        let sql = vec![one; counts.len()].join(" UNION ALL ");
        let mut rows = sqlx::query_as::<_, (i64, String, String)>(AssertSqlSafe(sql));
        for (key, _) in &counts {
            rows = rows.bind(key);
            if let Some((due, instance, node)) = after {
                rows = rows.bind(due).bind(instance).bind(node);
            }
            rows = rows.bind(offset + limit);
        }
        let rows = rows.fetch_all(&self.readers).await.map_err(map_sqlx)?;
        let items = inbox_page(rows, offset, limit)?;
        Ok(Page { items, total: to_u64(total, "count")?, page: query.page, page_size: query.page_size })
    }

    pub(super) async fn are_open_steps_built(&self) -> Result<bool, StoreError> {
        let built: Option<i64> = sqlx::query_scalar("SELECT 1 FROM derived_builds WHERE name = 'open_steps'")
            .fetch_optional(&self.readers)
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
        let (instance, rows, version) = (instance.to_owned(), rows.to_vec(), to_i64(version, "version")?);
        self.write_with(move |w, _| {
            if ready(w.version_of(&instance))? != Some(version) {
                return Ok(false);
            }
            w.forget_open_steps(&instance)?;
            let rows: Vec<(&str, &OpenStepRow)> = rows.iter().map(|r| (instance.as_str(), r)).collect();
            if !rows.is_empty() {
                w.insert_open_steps(&rows)?;
            }
            Ok(true)
        })
        .await
    }

    pub(super) async fn note_open_steps_built(&self) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO derived_builds (name, built_at) VALUES ('open_steps', ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(micros(Utc::now()))
        .execute(&self.writer)
        .await
        .map_err(map_sqlx)?;
        Ok(())
    }
}
