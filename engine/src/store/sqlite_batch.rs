//! The SQLite statements of a batch ([`super::batch`]): `VALUES` lists, at most
//! [`ROWS_PER_STATEMENT`] rows a statement.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, Row};

use super::batch::{BatchWriter, LogAppend};
use super::common::{commit_time, decode_hash, map_sqlx, to_i64};
use super::due_key;
use super::sqlite_commit::{json_text, micros};
use super::{Commit, IdempotencyRecord, InstanceRecord, LateStep, OpenStepRow, StoreError, StoredEvent};

/// The most rows one statement carries (SQLite allows 32,766 parameters a statement; the
/// widest row here, an event, has 10).
const ROWS_PER_STATEMENT: usize = 512;

/// `(?, ?, …), (?, ?, …)…`: `rows` tuples of `columns` placeholders, padded to the size class.
fn tuples(rows: usize, columns: usize) -> String {
    repeat_row(rows, &format!("({})", vec!["?"; columns].join(", ")))
}

/// `row, row, …`, `rows` times padded to [`size_class`]`(rows)`.
fn repeat_row(rows: usize, row: &str) -> String {
    vec![row; size_class(rows)].join(", ")
}

/// Issue 10: a batch's statements list their rows as `VALUES`, so a statement's text changes with
/// the batch's size, and every new text is parsed and planned again (`sqlite3_prepare`, 16 % of
/// the writer thread's time at 64 clients). Padded to the next power of two with rows of NULLs,
/// which match nothing and are never inserted (`WHERE column1 IS NOT NULL`), each statement has
/// at most ten texts, all kept in the connection's statement cache.
fn size_class(rows: usize) -> usize {
    rows.next_power_of_two()
}

/// Binds the NULLs of the rows that pad `rows` real ones of `columns` each to their size class.
fn pad(mut query: Query<'_>, rows: usize, columns: usize) -> Query<'_> {
    for _ in 0..(size_class(rows) - rows) * columns {
        query = query.bind(None::<i64>);
    }
    query
}

const EVENT_COLUMNS: &str = "(instance, seq, at, actor, role, kind, payload, prev_hash, hash, log_index)";

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

/// The insert of `log`'s leaves `from..to`; the first statement checks that the stored tree
/// ends where `log` says.
fn leaves_sql(log: &LogAppend<'_>, from: usize, to: usize) -> String {
    let check = match (from, &log.after) {
        (0, None) => " AND NOT EXISTS (SELECT 1 FROM audit_leaves)",
        (0, Some(_)) => {
            " AND EXISTS (SELECT 1 FROM (SELECT idx, peaks FROM audit_leaves ORDER BY idx DESC LIMIT 1) \
             WHERE idx = ? AND peaks = ?)"
        }
        _ => "",
    };
    format!(
        "INSERT INTO audit_leaves (idx, instance, seq, leaf, peaks) SELECT * FROM (VALUES {}) \
         WHERE column1 IS NOT NULL{check}",
        tuples(to - from, 5)
    )
}

fn bind_leaves<'q>(
    mut query: Query<'q>,
    log: &'q LogAppend<'_>,
    from: usize,
    to: usize,
) -> Result<Query<'q>, StoreError> {
    for r in &log.rows[from..to] {
        query = query
            .bind(to_i64(r.index, "audit index")?)
            .bind(r.instance)
            .bind(to_i64(r.seq, "seq")?)
            .bind(r.leaf.to_vec())
            .bind(r.peaks.as_deref());
    }
    query = pad(query, to - from, 5);
    if let (0, Some((last, peaks))) = (from, &log.after) {
        query = query.bind(to_i64(*last, "audit index")?).bind(peaks.as_slice());
    }
    Ok(query)
}

/// Binds `events` (the first is `log`'s `offset`-th row), each with its leaf's index when `log`
/// has it.
fn bind_events<'q>(
    mut query: Query<'q>,
    events: &[&'q StoredEvent],
    payloads: &[&'q str],
    log: Option<&LogAppend<'_>>,
    offset: usize,
) -> Result<Query<'q>, StoreError> {
    for (i, (event, payload)) in events.iter().zip(payloads).enumerate() {
        let leaf = log.and_then(|l| l.rows.get(offset + i)).map(|r| to_i64(r.index, "audit index")).transpose()?;
        query = query
            .bind(event.instance.as_str())
            .bind(to_i64(event.seq, "seq")?)
            .bind(micros(event.at))
            .bind(event.actor.as_str())
            .bind(event.role.as_deref())
            .bind(event.kind.as_str())
            .bind(*payload)
            .bind(event.prev_hash.as_str())
            .bind(event.hash.as_str())
            .bind(leaf);
    }
    Ok(pad(query, events.len(), 10))
}

/// What [`write_snapshots`] does with an instance's snapshot that is already there.
#[derive(Clone, Copy)]
enum Existing {
    /// A commit's newer snapshot replaces it.
    Replace,
    /// A start whose id is taken leaves the other instance's alone (its batch is refused).
    Keep,
}

/// The snapshots `(instance, JSON text)` of commits that write one (`0016_snapshots.sql`: they
/// live apart from the instances' rows), each packed ([`super::packed`]).
async fn write_snapshots(
    conn: &mut SqliteConnection,
    snapshots: &[(&str, &str)],
    existing: Existing,
) -> Result<(), StoreError> {
    let on_conflict = match existing {
        Existing::Replace => "DO UPDATE SET body = excluded.body",
        Existing::Keep => "DO NOTHING",
    };
    for chunk in snapshots.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO snapshots (instance, body) SELECT * FROM (VALUES {}) WHERE column1 IS NOT NULL
             ON CONFLICT (instance) {on_conflict}",
            tuples(chunk.len(), 2)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (id, json) in chunk {
            query = query.bind(*id).bind(super::packed::pack(json));
        }
        pad(query, chunk.len(), 2).execute(&mut *conn).await.map_err(map_sqlx)?;
    }
    Ok(())
}

#[async_trait]
impl BatchWriter for SqliteConnection {
    async fn compare_and_set_versions(&mut self, commits: &[&Commit]) -> Result<bool, StoreError> {
        for chunk in commits.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "WITH v (id, expected, next, status, snapshot, at) AS (VALUES {})
                 UPDATE instances SET version = v.next, status = v.status,
                        snapshot_version = CASE WHEN v.snapshot THEN v.next ELSE instances.snapshot_version END,
                        updated_at = v.at
                 FROM v WHERE instances.id = v.id AND instances.version = v.expected",
                tuples(chunk.len(), 6)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for commit in chunk {
                let expected = to_i64(commit.expected_version, "version")?;
                let added = to_i64(commit.events.len() as u64, "event count")?;
                query = query
                    .bind(commit.instance.as_str())
                    .bind(expected)
                    .bind(expected + added)
                    .bind(commit.status.as_str())
                    .bind(commit.snapshot.is_some())
                    .bind(micros(commit_time(commit)));
            }
            let updated = pad(query, chunk.len(), 6).execute(&mut *self).await.map_err(map_sqlx)?.rows_affected();
            if updated != chunk.len() as u64 {
                return Ok(false);
            }
        }
        let snapshots: Vec<(&str, &str)> =
            commits.iter().filter_map(|c| c.snapshot.as_deref().map(|s| (c.instance.as_str(), s))).collect();
        write_snapshots(self, &snapshots, Existing::Replace).await?;
        Ok(true)
    }

    async fn hashes_at(&mut self, wanted: &[(&str, i64)]) -> Result<HashMap<String, [u8; 32]>, StoreError> {
        let mut found = HashMap::with_capacity(wanted.len());
        for chunk in wanted.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "WITH k (instance, seq) AS (VALUES {})
                 SELECT events.instance, events.hash FROM k
                 JOIN events ON events.instance = k.instance AND events.seq = k.seq",
                tuples(chunk.len(), 2)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (instance, seq) in chunk {
                query = query.bind(*instance).bind(*seq);
            }
            for row in pad(query, chunk.len(), 2).fetch_all(&mut *self).await.map_err(map_sqlx)? {
                let instance: String = row.try_get(0).map_err(map_sqlx)?;
                let hash: String = row.try_get(1).map_err(map_sqlx)?;
                found.insert(instance, decode_hash(&hash)?);
            }
        }
        Ok(found)
    }

    async fn insert_idempotency(&mut self, keyed: &[(&Commit, &IdempotencyRecord)]) -> Result<bool, StoreError> {
        for chunk in keyed.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO idempotency
                 (principal, idempotency_key, request_hash, response, instance, created_at)
                 SELECT * FROM (VALUES {}) WHERE column1 IS NOT NULL
                 ON CONFLICT (principal, idempotency_key) DO NOTHING",
                tuples(chunk.len(), 6)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (commit, idem) in chunk {
                query = query
                    .bind(idem.principal.as_str())
                    .bind(idem.key.as_str())
                    .bind(idem.request_hash.as_str())
                    .bind(json_text(&idem.response)?)
                    .bind(commit.instance.as_str())
                    .bind(micros(commit_time(commit)));
            }
            let inserted = pad(query, chunk.len(), 6).execute(&mut *self).await.map_err(map_sqlx)?.rows_affected();
            if inserted != chunk.len() as u64 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn insert_events(
        &mut self,
        events: &[&StoredEvent],
        payloads: &[&str],
        log: Option<&LogAppend<'_>>,
    ) -> Result<bool, StoreError> {
        if let Some(log) = log {
            if let (Some(last), true) = (log.rows.last(), events.len() <= ROWS_PER_STATEMENT) {
                // One hand-off to the driver's thread for both tables: the leaves (checked against
                // the stored tree), then the events only if their last leaf is there — it is not
                // when the check failed.
                let sql = format!(
                    "{}; INSERT INTO events {EVENT_COLUMNS} SELECT * FROM (VALUES {}) \
                     WHERE column1 IS NOT NULL AND (SELECT leaf FROM audit_leaves WHERE idx = ?) = ?",
                    leaves_sql(log, 0, log.rows.len()),
                    tuples(events.len(), 10)
                );
                let query = bind_leaves(sqlx::query(AssertSqlSafe(sql)), log, 0, log.rows.len())?;
                let query = bind_events(query, events, payloads, Some(log), 0)?
                    .bind(to_i64(last.index, "audit index")?)
                    .bind(last.leaf.to_vec());
                return match query.execute(&mut *self).await.map_err(map_sqlx)?.rows_affected() {
                    0 => Ok(false),
                    n if n == 2 * events.len() as u64 => Ok(true),
                    n => Err(StoreError::Corrupt(format!(
                        "{n} rows written for {} events and their leaves",
                        events.len()
                    ))),
                };
            }
            if !self.insert_log_leaves(log).await? {
                return Ok(false);
            }
        }
        for (c, (chunk, texts)) in
            events.chunks(ROWS_PER_STATEMENT).zip(payloads.chunks(ROWS_PER_STATEMENT)).enumerate()
        {
            let sql = format!(
                "INSERT INTO events {EVENT_COLUMNS} SELECT * FROM (VALUES {}) WHERE column1 IS NOT NULL",
                tuples(chunk.len(), 10)
            );
            let query = bind_events(sqlx::query(AssertSqlSafe(sql)), chunk, texts, log, c * ROWS_PER_STATEMENT)?;
            query.execute(&mut *self).await.map_err(map_sqlx)?;
        }
        Ok(true)
    }

    async fn fire_timers(&mut self, fires: &[(i64, i64, &str)]) -> Result<bool, StoreError> {
        for chunk in fires.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "WITH f (id, fence, instance) AS (VALUES {})
                 UPDATE timers SET state = 'fired' FROM f
                 WHERE timers.id = f.id AND timers.fence = f.fence AND timers.instance = f.instance
                   AND timers.state = 'claimed'",
                tuples(chunk.len(), 3)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (timer, fence, instance) in chunk {
                query = query.bind(*timer).bind(*fence).bind(*instance);
            }
            let fired = pad(query, chunk.len(), 3).execute(&mut *self).await.map_err(map_sqlx)?.rows_affected();
            if fired != chunk.len() as u64 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn cancel_timers(&mut self, nodes: &[(&str, &str)]) -> Result<(), StoreError> {
        for chunk in nodes.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "WITH c (instance, node) AS (VALUES {})
                 UPDATE timers SET state = 'cancelled' FROM c
                 WHERE timers.instance = c.instance AND timers.node = c.node
                   AND timers.state IN ('pending', 'claimed')",
                tuples(chunk.len(), 2)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (instance, node) in chunk {
                query = query.bind(*instance).bind(*node);
            }
            pad(query, chunk.len(), 2).execute(&mut *self).await.map_err(map_sqlx)?;
        }
        Ok(())
    }

    async fn insert_timers(&mut self, commits: &[&Commit]) -> Result<(), StoreError> {
        let timers: Vec<_> = commits.iter().flat_map(|c| c.new_timers.iter()).collect();
        for chunk in timers.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO timers (instance, node, kind, due_at, state, fence, payload)
                 SELECT * FROM (VALUES {}) WHERE column1 IS NOT NULL",
                repeat_row(chunk.len(), "(?, ?, ?, ?, 'pending', 0, ?)")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for timer in chunk {
                query = query
                    .bind(timer.instance.as_str())
                    .bind(timer.node.as_str())
                    .bind(timer.kind.as_str())
                    .bind(micros(timer.due_at))
                    .bind(json_text(&timer.payload)?);
            }
            pad(query, chunk.len(), 5).execute(&mut *self).await.map_err(map_sqlx)?;
        }
        Ok(())
    }

    async fn delete_open_steps(&mut self, nodes: &[(&str, &str)]) -> Result<(), StoreError> {
        for chunk in nodes.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "WITH c (instance, node) AS (VALUES {})
                 DELETE FROM open_steps WHERE (instance, node) IN (SELECT instance, node FROM c)",
                tuples(chunk.len(), 2)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (instance, node) in chunk {
                query = query.bind(*instance).bind(*node);
            }
            pad(query, chunk.len(), 2).execute(&mut *self).await.map_err(map_sqlx)?;
        }
        Ok(())
    }

    async fn insert_open_steps(&mut self, rows: &[(&str, &OpenStepRow)]) -> Result<(), StoreError> {
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO open_steps (instance, node, reader, due_key, overdue)
                 SELECT * FROM (VALUES {}) WHERE column1 IS NOT NULL",
                tuples(chunk.len(), 5)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (instance, row) in chunk {
                query = query
                    .bind(*instance)
                    .bind(row.node.as_str())
                    .bind(row.reader.as_str())
                    .bind(due_key(row.due_at))
                    .bind(row.overdue);
            }
            pad(query, chunk.len(), 5).execute(&mut *self).await.map_err(map_sqlx)?;
        }
        Ok(())
    }

    async fn insert_late_steps(&mut self, rows: &[(&str, &LateStep)]) -> Result<(), StoreError> {
        // A burst of deadlines breaches one step per firing: the batch's rows in one statement.
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO late_steps (instance, node, role, office, due_at, late_at)
                 SELECT * FROM (VALUES {}) WHERE column1 IS NOT NULL ON CONFLICT DO NOTHING",
                tuples(chunk.len(), 6)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (instance, r) in chunk {
                query = query
                    .bind(*instance)
                    .bind(r.node.as_str())
                    .bind(r.role.as_str())
                    .bind(r.office.as_deref())
                    .bind(micros(r.due_at))
                    .bind(micros(r.late_at));
            }
            pad(query, chunk.len(), 6).execute(&mut *self).await.map_err(map_sqlx)?;
        }
        Ok(())
    }

    async fn policy_published(&mut self, name: &str, hash: &str) -> Result<bool, StoreError> {
        let published: Option<i64> = sqlx::query_scalar("SELECT 1 FROM policies WHERE name = ? AND hash = ?")
            .bind(name)
            .bind(hash)
            .fetch_optional(&mut *self)
            .await
            .map_err(map_sqlx)?;
        Ok(published.is_some())
    }

    async fn insert_instance_rows(&mut self, instances: &[&InstanceRecord]) -> Result<u64, StoreError> {
        let mut inserted = 0;
        for chunk in instances.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO instances
                     (id, policy_name, policy_hash, version, status, created_at, updated_at)
                     SELECT * FROM (VALUES {}) WHERE column1 IS NOT NULL ON CONFLICT (id) DO NOTHING",
                repeat_row(chunk.len(), "(?, ?, ?, 0, ?, ?, ?)")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for instance in chunk {
                query = query
                    .bind(instance.id.as_str())
                    .bind(instance.policy_name.as_str())
                    .bind(instance.policy_hash.as_str())
                    .bind(instance.status.as_str())
                    .bind(micros(instance.created_at))
                    .bind(micros(instance.updated_at));
            }
            inserted += pad(query, chunk.len(), 6).execute(&mut *self).await.map_err(map_sqlx)?.rows_affected();
        }
        // A row at version 0 has the snapshot it was created with (an id already taken keeps its own).
        let texts = instances.iter().map(|i| json_text(&i.snapshot)).collect::<Result<Vec<_>, _>>()?;
        let created: Vec<(&str, &str)> =
            instances.iter().zip(&texts).map(|(i, t)| (i.id.as_str(), t.as_str())).collect();
        write_snapshots(self, &created, Existing::Keep).await?;
        Ok(inserted)
    }

    async fn compare_and_set_version(&mut self, commit: &Commit) -> Result<bool, StoreError> {
        let expected = to_i64(commit.expected_version, "version")?;
        let added = to_i64(commit.events.len() as u64, "event count")?;
        let updated = sqlx::query(
            "UPDATE instances SET version = ?1, status = ?2,
                    snapshot_version = CASE WHEN ?3 THEN ?1 ELSE snapshot_version END, updated_at = ?4
             WHERE id = ?5 AND version = ?6",
        )
        .bind(expected + added)
        .bind(commit.status.as_str())
        .bind(commit.snapshot.is_some())
        .bind(micros(commit_time(commit)))
        .bind(commit.instance.as_str())
        .bind(expected)
        .execute(&mut *self)
        .await
        .map_err(map_sqlx)?
        .rows_affected();
        if updated != 1 {
            return Ok(false);
        }
        if let Some(snapshot) = &commit.snapshot {
            write_snapshots(self, &[(commit.instance.as_str(), snapshot.as_str())], Existing::Replace).await?;
        }
        Ok(true)
    }

    async fn hash_at(&mut self, instance: &str, seq: i64) -> Result<Option<[u8; 32]>, StoreError> {
        let hash: Option<String> = sqlx::query_scalar("SELECT hash FROM events WHERE instance = ? AND seq = ?")
            .bind(instance)
            .bind(seq)
            .fetch_optional(&mut *self)
            .await
            .map_err(map_sqlx)?;
        hash.as_deref().map(decode_hash).transpose()
    }

    async fn version_of(&mut self, instance: &str) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar("SELECT version FROM instances WHERE id = ?")
            .bind(instance)
            .fetch_optional(&mut *self)
            .await
            .map_err(map_sqlx)
    }

    async fn raise_counter_below(&mut self, key: &str, cap: i64) -> Result<bool, StoreError> {
        let raised = sqlx::query(
            "INSERT INTO counters (key, value) VALUES (?, 1)
             ON CONFLICT (key) DO UPDATE SET value = counters.value + 1 WHERE counters.value < ?",
        )
        .bind(key)
        .bind(cap)
        .execute(&mut *self)
        .await
        .map_err(map_sqlx)?
        .rows_affected();
        Ok(raised == 1)
    }

    async fn release_counter(&mut self, key: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE counters SET value = value - 1 WHERE key = ? AND value > 0")
            .bind(key)
            .execute(&mut *self)
            .await
            .map(|_| ())
            .map_err(map_sqlx)
    }

    async fn set_policy_hash(&mut self, instance: &str, hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE instances SET policy_hash = ? WHERE id = ?")
            .bind(hash)
            .bind(instance)
            .execute(&mut *self)
            .await
            .map(|_| ())
            .map_err(map_sqlx)
    }

    /// One writer at a time on SQLite: the write transaction holds the tree.
    async fn log_frontier(&mut self) -> Result<(u64, Vec<crate::audit::merkle::Hash>), StoreError> {
        let row = sqlx::query("SELECT idx, peaks FROM audit_leaves ORDER BY idx DESC LIMIT 1")
            .fetch_optional(&mut *self)
            .await
            .map_err(map_sqlx)?;
        let Some(row) = row else { return Ok((0, Vec::new())) };
        let last: i64 = row.try_get("idx").map_err(map_sqlx)?;
        let peaks: Option<Vec<u8>> = row.try_get("peaks").map_err(map_sqlx)?;
        let peaks = peaks.ok_or_else(|| StoreError::Corrupt(format!("audit leaf {last} carries no frontier")))?;
        Ok((super::common::to_u64(last, "audit index")? + 1, super::batch::peaks_from_bytes(&peaks)?))
    }

    async fn insert_log_leaves(&mut self, log: &LogAppend<'_>) -> Result<bool, StoreError> {
        // The first statement checks the stored tree; the others follow it in this transaction,
        // which holds the only writer.
        for from in (0..log.rows.len()).step_by(ROWS_PER_STATEMENT) {
            let to = (from + ROWS_PER_STATEMENT).min(log.rows.len());
            let query = bind_leaves(sqlx::query(AssertSqlSafe(leaves_sql(log, from, to))), log, from, to)?;
            let written = query.execute(&mut *self).await.map_err(map_sqlx)?.rows_affected();
            if written != (to - from) as u64 {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
