//! The SQLite statements of a batch ([`super::batch`]) on the writer's connection
//! ([`super::sqlite_writer`]): `VALUES` lists, at most [`ROWS_PER_STATEMENT`] rows a statement,
//! prepared once and bound straight from the commits.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::types::{Null, ToSql};
use rusqlite::{CachedStatement, Connection};

use super::batch::{followed_events, Advanced, BatchWriter, OpenStepsChange};
use super::common::{commit_time, decode_hash, to_i64};
use super::due_key;
use super::log_append::LogAppend;
use super::sqlite_commit::{json_text, micros};
use super::sqlite_writer::map_rusqlite;
use super::{Commit, IdempotencyRecord, InstanceRecord, LateStep, OpenStepRow, StoreError, StoredEvent};
use crate::audit::merkle::Hash;

/// The most rows one statement carries (SQLite allows 32,766 parameters a statement; the
/// widest row here, an event, has 10).
const ROWS_PER_STATEMENT: usize = 512;

/// The writer's connection inside its open transaction, as a [`BatchWriter`]. Its methods run
/// their statements at once and never wait ([`super::sqlite_writer::ready`]).
pub(super) struct WriterTx<'c>(pub &'c mut Connection);

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

/// A cached statement being bound, parameter after parameter.
struct Bound<'c> {
    statement: CachedStatement<'c>,
    bound: usize,
}

impl<'c> Bound<'c> {
    fn new(conn: &'c Connection, sql: &str) -> Result<Bound<'c>, StoreError> {
        Ok(Bound { statement: conn.prepare_cached(sql).map_err(map_rusqlite)?, bound: 0 })
    }

    /// Binds the next parameter.
    fn bind(&mut self, value: impl ToSql) -> Result<&mut Self, StoreError> {
        self.bound += 1;
        self.statement.raw_bind_parameter(self.bound, value).map_err(map_rusqlite)?;
        Ok(self)
    }

    /// Binds the NULLs of the rows that pad `rows` real ones of `columns` each to their size
    /// class.
    fn pad(&mut self, rows: usize, columns: usize) -> Result<&mut Self, StoreError> {
        for _ in 0..(size_class(rows) - rows) * columns {
            self.bind(Null)?;
        }
        Ok(self)
    }

    /// Runs it; the rows it changed.
    fn execute(&mut self) -> Result<u64, StoreError> {
        self.statement.raw_execute().map(|n| n as u64).map_err(map_rusqlite)
    }

    /// Runs it; each row it returns given to `each`.
    fn rows(&mut self, mut each: impl FnMut(&rusqlite::Row<'_>) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let mut rows = self.statement.raw_query();
        while let Some(row) = rows.next().map_err(map_rusqlite)? {
            each(row)?;
        }
        Ok(())
    }
}

/// A column of a row the writer read, or what is wrong with it.
fn column<T: rusqlite::types::FromSql>(row: &rusqlite::Row<'_>, index: usize) -> Result<T, StoreError> {
    row.get(index).map_err(map_rusqlite)
}

const EVENT_COLUMNS: &str = "(instance, seq, at, actor, role, kind, payload, prev_hash, hash, log_index)";

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
fn write_snapshots(conn: &Connection, snapshots: &[(&str, &str)], existing: Existing) -> Result<(), StoreError> {
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
        let mut query = Bound::new(conn, &sql)?;
        for (id, json) in chunk {
            query.bind(*id)?.bind(super::packed::pack(json))?;
        }
        query.pad(chunk.len(), 2)?.execute()?;
    }
    Ok(())
}

impl WriterTx<'_> {
    fn statement(&self, sql: &str) -> Result<Bound<'_>, StoreError> {
        Bound::new(self.0, sql)
    }

    fn run(&self, sql: &str) -> Result<(), StoreError> {
        self.0.execute_batch(sql).map_err(map_rusqlite)
    }
}

#[async_trait]
impl BatchWriter for WriterTx<'_> {
    async fn savepoint(&mut self) -> Result<(), StoreError> {
        self.run("SAVEPOINT batch")
    }

    async fn release_savepoint(&mut self) -> Result<(), StoreError> {
        self.run("RELEASE batch")
    }

    async fn rollback_to_savepoint(&mut self) -> Result<(), StoreError> {
        self.run("ROLLBACK TO batch; RELEASE batch")
    }

    async fn stage_together(&mut self, commits: &[&Commit]) -> Result<Option<HashMap<String, Hash>>, StoreError> {
        if !self.compare_and_set_versions(commits)? {
            return Ok(None);
        }
        let found = self.hashes_at(&followed_events(commits)?)?;
        Ok(super::batch::stage_rest(self, commits).await?.then_some(found))
    }

    async fn replace_timers(&mut self, cancel: &[(&str, &str)], commits: &[&Commit]) -> Result<(), StoreError> {
        self.cancel_timers(cancel)?;
        self.insert_timers(commits)
    }

    async fn replace_open_steps(
        &mut self,
        nodes: &[(&str, &str)],
        rows: &[(&str, &OpenStepRow)],
    ) -> Result<(), StoreError> {
        self.delete_open_steps(nodes)?;
        self.insert_open_steps(rows)
    }

    async fn advance_version(&mut self, commit: &Commit) -> Result<Advanced, StoreError> {
        if !self.compare_and_set_version(commit)? {
            return Ok(Advanced::Refused);
        }
        let followed = match commit.expected_version {
            0 => None,
            v => self.hash_at(&commit.instance, to_i64(v, "version")?)?,
        };
        Ok(Advanced::Bumped(followed))
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
            let mut query = self.statement(&sql)?;
            for (commit, idem) in chunk {
                query
                    .bind(idem.principal.as_str())?
                    .bind(idem.key.as_str())?
                    .bind(idem.request_hash.as_str())?
                    .bind(json_text(&idem.response)?)?
                    .bind(commit.instance.as_str())?
                    .bind(micros(commit_time(commit)))?;
            }
            if query.pad(chunk.len(), 6)?.execute()? != chunk.len() as u64 {
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
        open_steps: OpenStepsChange<'_>,
    ) -> Result<bool, StoreError> {
        // The leaves first, checked against the stored tree; no event is written when the check
        // failed. (A statement costs no hand-off here: two statements, not one of two parts.)
        if let Some(log) = log {
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
            let mut query = self.statement(&sql)?;
            for (i, (event, payload)) in chunk.iter().zip(texts).enumerate() {
                let leaf = log
                    .and_then(|l| l.rows.get(c * ROWS_PER_STATEMENT + i))
                    .map(|r| to_i64(r.index, "audit index"))
                    .transpose()?;
                query
                    .bind(event.instance.as_str())?
                    .bind(to_i64(event.seq, "seq")?)?
                    .bind(micros(event.at))?
                    .bind(event.actor.as_str())?
                    .bind(event.role.as_deref())?
                    .bind(event.kind.as_str())?
                    .bind(*payload)?
                    .bind(event.prev_hash.as_str())?
                    .bind(event.hash.as_str())?
                    .bind(leaf)?;
            }
            query.pad(chunk.len(), 10)?.execute()?;
        }
        self.delete_open_steps(open_steps.nodes)?;
        self.insert_open_steps(open_steps.rows)?;
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
            let mut query = self.statement(&sql)?;
            for (timer, fence, instance) in chunk {
                query.bind(*timer)?.bind(*fence)?.bind(*instance)?;
            }
            if query.pad(chunk.len(), 3)?.execute()? != chunk.len() as u64 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn insert_late_steps(&mut self, rows: &[(&str, &LateStep)]) -> Result<(), StoreError> {
        // A burst of deadlines breaches one step per firing: the batch's rows in one statement.
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO late_steps (instance, node, role, office, due_at, late_at)
                 SELECT * FROM (VALUES {}) WHERE column1 IS NOT NULL ON CONFLICT DO NOTHING",
                tuples(chunk.len(), 6)
            );
            let mut query = self.statement(&sql)?;
            for (instance, r) in chunk {
                query
                    .bind(*instance)?
                    .bind(r.node.as_str())?
                    .bind(r.role.as_str())?
                    .bind(r.office.as_deref())?
                    .bind(micros(r.due_at))?
                    .bind(micros(r.late_at))?;
            }
            query.pad(chunk.len(), 6)?.execute()?;
        }
        Ok(())
    }

    async fn policy_published(&mut self, name: &str, hash: &str) -> Result<bool, StoreError> {
        let mut published = false;
        self.statement("SELECT 1 FROM policies WHERE name = ? AND hash = ?")?.bind(name)?.bind(hash)?.rows(|_| {
            published = true;
            Ok(())
        })?;
        Ok(published)
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
            let mut query = self.statement(&sql)?;
            for instance in chunk {
                query
                    .bind(instance.id.as_str())?
                    .bind(instance.policy_name.as_str())?
                    .bind(instance.policy_hash.as_str())?
                    .bind(instance.status.as_str())?
                    .bind(micros(instance.created_at))?
                    .bind(micros(instance.updated_at))?;
            }
            inserted += query.pad(chunk.len(), 6)?.execute()?;
        }
        // A row at version 0 has the snapshot it was created with (an id already taken keeps its own).
        let texts = instances.iter().map(|i| json_text(&i.snapshot)).collect::<Result<Vec<_>, _>>()?;
        let created: Vec<(&str, &str)> =
            instances.iter().zip(&texts).map(|(i, t)| (i.id.as_str(), t.as_str())).collect();
        write_snapshots(self.0, &created, Existing::Keep)?;
        Ok(inserted)
    }

    async fn version_of(&mut self, instance: &str) -> Result<Option<i64>, StoreError> {
        let mut version = None;
        self.statement("SELECT version FROM instances WHERE id = ?")?.bind(instance)?.rows(|row| {
            version = Some(column(row, 0)?);
            Ok(())
        })?;
        Ok(version)
    }

    async fn raise_counter_below(&mut self, key: &str, cap: i64) -> Result<bool, StoreError> {
        let raised = self
            .statement(
                "INSERT INTO counters (key, value) VALUES (?, 1)
                 ON CONFLICT (key) DO UPDATE SET value = counters.value + 1 WHERE counters.value < ?",
            )?
            .bind(key)?
            .bind(cap)?
            .execute()?;
        Ok(raised == 1)
    }

    async fn release_counter(&mut self, key: &str) -> Result<(), StoreError> {
        self.statement("UPDATE counters SET value = value - 1 WHERE key = ? AND value > 0")?.bind(key)?.execute()?;
        Ok(())
    }

    async fn set_policy_hash(&mut self, instance: &str, hash: &str) -> Result<(), StoreError> {
        self.statement("UPDATE instances SET policy_hash = ? WHERE id = ?")?.bind(hash)?.bind(instance)?.execute()?;
        Ok(())
    }

    /// One writer at a time on SQLite: the write transaction holds the tree.
    async fn lock_log(&mut self, _hints: &[(&str, u64)]) -> Result<(), StoreError> {
        // The one writer thread holds the database's write lock for the whole transaction; the
        // process's own event stream hears of its commits from the runtime.
        Ok(())
    }

    async fn lock_counters(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn log_frontier(&mut self) -> Result<(u64, Vec<crate::audit::merkle::Hash>), StoreError> {
        let mut last = None;
        self.statement("SELECT idx, peaks FROM audit_leaves ORDER BY idx DESC LIMIT 1")?.rows(|row| {
            last = Some((column::<i64>(row, 0)?, column::<Option<Vec<u8>>>(row, 1)?));
            Ok(())
        })?;
        let Some((last, peaks)) = last else { return Ok((0, Vec::new())) };
        let peaks = peaks.ok_or_else(|| StoreError::Corrupt(format!("audit leaf {last} carries no frontier")))?;
        Ok((super::common::to_u64(last, "audit index")? + 1, super::log_append::peaks_from_bytes(&peaks)?))
    }

    async fn insert_log_leaves(&mut self, log: &LogAppend<'_>) -> Result<bool, StoreError> {
        // The first statement checks the stored tree; the others follow it in this transaction,
        // which holds the only writer.
        for from in (0..log.rows.len()).step_by(ROWS_PER_STATEMENT) {
            let to = (from + ROWS_PER_STATEMENT).min(log.rows.len());
            let mut query = self.statement(&leaves_sql(log, from, to))?;
            for r in &log.rows[from..to] {
                query
                    .bind(to_i64(r.index, "audit index")?)?
                    .bind(r.instance)?
                    .bind(to_i64(r.seq, "seq")?)?
                    .bind(r.leaf.as_slice())?
                    .bind(r.peaks.as_deref())?;
            }
            query.pad(to - from, 5)?;
            if let (0, Some((last, peaks))) = (from, &log.after) {
                query.bind(to_i64(*last, "audit index")?)?.bind(peaks.as_slice())?;
            }
            if query.execute()? != (to - from) as u64 {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The statements the batch's calls are made of.
impl WriterTx<'_> {
    fn compare_and_set_versions(&mut self, commits: &[&Commit]) -> Result<bool, StoreError> {
        for chunk in commits.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "WITH v (id, expected, next, status, snapshot, at) AS (VALUES {})
                 UPDATE instances SET version = v.next, status = v.status,
                        snapshot_version = CASE WHEN v.snapshot THEN v.next ELSE instances.snapshot_version END,
                        updated_at = v.at
                 FROM v WHERE instances.id = v.id AND instances.version = v.expected",
                tuples(chunk.len(), 6)
            );
            let mut query = self.statement(&sql)?;
            for commit in chunk {
                let expected = to_i64(commit.expected_version, "version")?;
                let added = to_i64(commit.events.len() as u64, "event count")?;
                query
                    .bind(commit.instance.as_str())?
                    .bind(expected)?
                    .bind(expected + added)?
                    .bind(commit.status.as_str())?
                    .bind(commit.snapshot.is_some())?
                    .bind(micros(commit_time(commit)))?;
            }
            if query.pad(chunk.len(), 6)?.execute()? != chunk.len() as u64 {
                return Ok(false);
            }
        }
        let snapshots: Vec<(&str, &str)> =
            commits.iter().filter_map(|c| c.snapshot.as_deref().map(|s| (c.instance.as_str(), s))).collect();
        write_snapshots(self.0, &snapshots, Existing::Replace)?;
        Ok(true)
    }

    fn hashes_at(&mut self, wanted: &[(&str, i64)]) -> Result<HashMap<String, [u8; 32]>, StoreError> {
        let mut found = HashMap::with_capacity(wanted.len());
        for chunk in wanted.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "WITH k (instance, seq) AS (VALUES {})
                 SELECT events.instance, events.hash FROM k
                 JOIN events ON events.instance = k.instance AND events.seq = k.seq",
                tuples(chunk.len(), 2)
            );
            let mut query = self.statement(&sql)?;
            for (instance, seq) in chunk {
                query.bind(*instance)?.bind(*seq)?;
            }
            query.pad(chunk.len(), 2)?.rows(|row| {
                let hash: String = column(row, 1)?;
                found.insert(column(row, 0)?, decode_hash(&hash)?);
                Ok(())
            })?;
        }
        Ok(found)
    }

    fn cancel_timers(&mut self, nodes: &[(&str, &str)]) -> Result<(), StoreError> {
        self.for_each_node(nodes, |values| {
            format!(
                "WITH c (instance, node) AS (VALUES {values})
                 UPDATE timers SET state = 'cancelled' FROM c
                 WHERE timers.instance = c.instance AND timers.node = c.node
                   AND timers.state IN ('pending', 'claimed')"
            )
        })
    }

    /// Runs the statement `sql` makes of a `VALUES` list of `(instance, node)` pairs, once for
    /// each [`ROWS_PER_STATEMENT`] of `nodes`.
    fn for_each_node(&mut self, nodes: &[(&str, &str)], sql: impl Fn(&str) -> String) -> Result<(), StoreError> {
        for chunk in nodes.chunks(ROWS_PER_STATEMENT) {
            let mut query = self.statement(&sql(&tuples(chunk.len(), 2)))?;
            for (instance, node) in chunk {
                query.bind(*instance)?.bind(*node)?;
            }
            query.pad(chunk.len(), 2)?.execute()?;
        }
        Ok(())
    }

    fn insert_timers(&mut self, commits: &[&Commit]) -> Result<(), StoreError> {
        let timers: Vec<_> = commits.iter().flat_map(|c| c.new_timers.iter()).collect();
        for chunk in timers.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO timers (instance, node, kind, due_at, state, fence, payload)
                 SELECT * FROM (VALUES {}) WHERE column1 IS NOT NULL",
                repeat_row(chunk.len(), "(?, ?, ?, ?, 'pending', 0, ?)")
            );
            let mut query = self.statement(&sql)?;
            for timer in chunk {
                query
                    .bind(timer.instance.as_str())?
                    .bind(timer.node.as_str())?
                    .bind(timer.kind.as_str())?
                    .bind(micros(timer.due_at))?
                    .bind(json_text(&timer.payload)?)?;
            }
            query.pad(chunk.len(), 5)?.execute()?;
        }
        Ok(())
    }

    fn delete_open_steps(&mut self, nodes: &[(&str, &str)]) -> Result<(), StoreError> {
        self.for_each_node(nodes, |values| {
            format!(
                "WITH c (instance, node) AS (VALUES {values})
                 DELETE FROM open_steps WHERE (instance, node) IN (SELECT instance, node FROM c)"
            )
        })
    }

    pub(super) fn insert_open_steps(&mut self, rows: &[(&str, &OpenStepRow)]) -> Result<(), StoreError> {
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO open_steps (instance, node, reader, due_key, overdue)
                 SELECT * FROM (VALUES {}) WHERE column1 IS NOT NULL",
                tuples(chunk.len(), 5)
            );
            let mut query = self.statement(&sql)?;
            for (instance, row) in chunk {
                query
                    .bind(*instance)?
                    .bind(row.node.as_str())?
                    .bind(row.reader.as_str())?
                    .bind(due_key(row.due_at))?
                    .bind(row.overdue)?;
            }
            query.pad(chunk.len(), 5)?.execute()?;
        }
        Ok(())
    }

    fn compare_and_set_version(&mut self, commit: &Commit) -> Result<bool, StoreError> {
        let expected = to_i64(commit.expected_version, "version")?;
        let added = to_i64(commit.events.len() as u64, "event count")?;
        let updated = self
            .statement(
                "UPDATE instances SET version = ?1, status = ?2,
                        snapshot_version = CASE WHEN ?3 THEN ?1 ELSE snapshot_version END, updated_at = ?4
                 WHERE id = ?5 AND version = ?6",
            )?
            .bind(expected + added)?
            .bind(commit.status.as_str())?
            .bind(commit.snapshot.is_some())?
            .bind(micros(commit_time(commit)))?
            .bind(commit.instance.as_str())?
            .bind(expected)?
            .execute()?;
        if updated != 1 {
            return Ok(false);
        }
        if let Some(snapshot) = &commit.snapshot {
            write_snapshots(self.0, &[(commit.instance.as_str(), snapshot.as_str())], Existing::Replace)?;
        }
        Ok(true)
    }

    fn hash_at(&mut self, instance: &str, seq: i64) -> Result<Option<[u8; 32]>, StoreError> {
        let mut hash = None;
        self.statement("SELECT hash FROM events WHERE instance = ? AND seq = ?")?.bind(instance)?.bind(seq)?.rows(
            |row| {
                hash = Some(decode_hash(&column::<String>(row, 0)?)?);
                Ok(())
            },
        )?;
        Ok(hash)
    }
}

/// The writer's own statements outside the batch flow: the rebuilds of derived tables.
impl WriterTx<'_> {
    /// Issue 12: the oldest `limit` events written before the global tree, to append.
    pub fn backfill_events(&self, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let mut events = Vec::new();
        self.statement(
            "SELECT e.instance, e.seq, e.at, e.actor, e.role, e.kind, e.payload, e.prev_hash, e.hash
             FROM audit_backfill b JOIN events e ON e.instance = b.instance AND e.seq = b.seq
             ORDER BY e.at, e.instance, e.seq LIMIT ?",
        )?
        .bind(i64::from(limit))?
        .rows(|row| {
            let payload: String = column(row, 6)?;
            events.push(StoredEvent {
                instance: column(row, 0)?,
                seq: super::common::to_u64(column(row, 1)?, "seq")?,
                at: super::sqlite_commit::from_micros(column(row, 2)?, "at")?,
                actor: column(row, 3)?,
                role: column(row, 4)?,
                kind: column(row, 5)?,
                payload: std::sync::Arc::new(super::sqlite_commit::parse_json_text(&payload, "payload")?),
                prev_hash: column(row, 7)?,
                hash: column(row, 8)?,
            });
            Ok(())
        })?;
        Ok(events)
    }

    /// Issue 12: `events` have their leaves now.
    pub fn forget_backfilled(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        for e in events {
            self.statement("DELETE FROM audit_backfill WHERE instance = ? AND seq = ?")?
                .bind(e.instance.as_str())?
                .bind(to_i64(e.seq, "seq")?)?
                .execute()?;
        }
        Ok(())
    }

    /// Issue 10.6: an instance's open-step rows, before its rows are written again.
    pub fn forget_open_steps(&self, instance: &str) -> Result<(), StoreError> {
        self.statement("DELETE FROM open_steps WHERE instance = ?")?.bind(instance)?.execute()?;
        Ok(())
    }
}
