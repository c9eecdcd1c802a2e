//! The PostgreSQL statements of a batch ([`super::batch`]): one statement per table over
//! `UNNEST`ed arrays, whatever the batch's size (one round trip each), and where two tables' or
//! two steps' writes can share a statement (data-modifying CTEs), one round trip for both.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::postgres::PgConnection;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Row};

use super::batch::{Advanced, BatchWriter, LogAppend};
use super::common::{commit_time, decode_hash, map_sqlx, to_i64};
use super::due_key;
use super::{Commit, IdempotencyRecord, InstanceRecord, LateStep, OpenStepRow, StoreError, StoredEvent};
use crate::audit::merkle::Hash;
use crate::audit::truncate_to_micros;

/// A commit transaction's connection with what its statements name besides their rows: the
/// channel its commit hints go to (issue 9.6).
pub(super) struct PgTx<'a> {
    pub conn: &'a mut PgConnection,
    pub channel: &'a str,
}

#[async_trait]
impl BatchWriter for PgTx<'_> {
    // The simple protocol (`raw_sql`): nothing to prepare or cache, and the
    // rollback's two statements in one round trip.
    async fn savepoint(&mut self) -> Result<(), StoreError> {
        sqlx::raw_sql("SAVEPOINT batch").execute(&mut *self.conn).await.map(|_| ()).map_err(map_sqlx)
    }

    async fn release_savepoint(&mut self) -> Result<(), StoreError> {
        sqlx::raw_sql("RELEASE SAVEPOINT batch").execute(&mut *self.conn).await.map(|_| ()).map_err(map_sqlx)
    }

    async fn rollback_to_savepoint(&mut self) -> Result<(), StoreError> {
        sqlx::raw_sql("ROLLBACK TO SAVEPOINT batch; RELEASE SAVEPOINT batch")
            .execute(&mut *self.conn)
            .await
            .map(|_| ())
            .map_err(map_sqlx)
    }

    async fn advance_versions(&mut self, commits: &[&Commit]) -> Result<Option<HashMap<String, Hash>>, StoreError> {
        let mut expected = Vec::with_capacity(commits.len());
        let mut next = Vec::with_capacity(commits.len());
        for c in commits {
            let from = to_i64(c.expected_version, "version")?;
            expected.push(from);
            next.push(from + to_i64(c.events.len() as u64, "event count")?);
        }
        // The rows locked first, in the order of their ids (an uncorrelated subquery: evaluated
        // once, before the update takes any row): two nodes' batches of the same instances then
        // wait for each other instead of deadlocking (the join's own order is the planner's).
        // The rows moved, each with the hash its new events chain on, in the same round trip.
        let rows = sqlx::query(
            "WITH moved AS (
                 UPDATE instances AS i SET version = v.next, status = v.status,
                        snapshot_version = CASE WHEN v.snapshot IS NULL THEN i.snapshot_version ELSE v.next END,
                        updated_at = v.at
                 FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
                             $6::timestamptz[]) AS v (id, expected, next, status, snapshot, at)
                 WHERE i.id = v.id AND i.version = v.expected
                   AND (SELECT count(*) FROM (SELECT FROM instances WHERE id = ANY($1) ORDER BY id
                                              FOR NO KEY UPDATE) AS locked) >= 0
                 RETURNING i.id, v.expected, v.snapshot),
             snapped AS (
                 INSERT INTO snapshots (instance, body) SELECT id, snapshot::jsonb FROM moved WHERE snapshot IS NOT NULL
                 ON CONFLICT (instance) DO UPDATE SET body = excluded.body)
             SELECT m.id, e.hash FROM moved m LEFT JOIN events e ON e.instance = m.id AND e.seq = m.expected",
        )
        .bind(commits.iter().map(|c| c.instance.as_str()).collect::<Vec<_>>())
        .bind(expected)
        .bind(next)
        .bind(commits.iter().map(|c| c.status.as_str()).collect::<Vec<_>>())
        .bind(commits.iter().map(|c| c.snapshot.as_deref()).collect::<Vec<_>>())
        .bind(commits.iter().map(|c| commit_time(c)).collect::<Vec<_>>())
        .fetch_all(&mut *self.conn)
        .await
        .map_err(map_sqlx)?;
        if rows.len() != commits.len() {
            return Ok(None);
        }
        let mut found = HashMap::with_capacity(rows.len());
        for row in rows {
            let hash: Option<String> = row.try_get(1).map_err(map_sqlx)?;
            if let Some(hash) = hash {
                found.insert(row.try_get(0).map_err(map_sqlx)?, decode_hash(&hash)?);
            }
        }
        Ok(Some(found))
    }

    async fn replace_timers(&mut self, cancel: &[(&str, &str)], commits: &[&Commit]) -> Result<(), StoreError> {
        let timers: Vec<_> = commits.iter().flat_map(|c| c.new_timers.iter()).collect();
        // One round trip: the cancel in a data-modifying CTE, which cannot see the rows the
        // insert adds (one snapshot for the statement), so a node's new timer stays live.
        sqlx::query(
            "WITH cancelled AS (
                 UPDATE timers AS t SET state = 'cancelled'
                 FROM UNNEST($1::text[], $2::text[]) AS c (instance, node)
                 WHERE t.instance = c.instance AND t.node = c.node AND t.state IN ('pending', 'claimed'))
             INSERT INTO timers (instance, node, kind, due_at, state, fence, payload)
             SELECT instance, node, kind, due_at, 'pending', 0, payload
             FROM UNNEST($3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::jsonb[])
                  AS t (instance, node, kind, due_at, payload)",
        )
        .bind(cancel.iter().map(|n| n.0).collect::<Vec<_>>())
        .bind(cancel.iter().map(|n| n.1).collect::<Vec<_>>())
        .bind(timers.iter().map(|t| t.instance.as_str()).collect::<Vec<_>>())
        .bind(timers.iter().map(|t| t.node.as_str()).collect::<Vec<_>>())
        .bind(timers.iter().map(|t| t.kind.as_str()).collect::<Vec<_>>())
        .bind(timers.iter().map(|t| truncate_to_micros(t.due_at)).collect::<Vec<_>>())
        .bind(timers.iter().map(|t| Json(&t.payload)).collect::<Vec<_>>())
        .execute(&mut *self.conn)
        .await
        .map_err(map_sqlx)?;
        Ok(())
    }

    async fn replace_open_steps(
        &mut self,
        nodes: &[(&str, &str)],
        rows: &[(&str, &OpenStepRow)],
    ) -> Result<(), StoreError> {
        // One round trip: the delete in a data-modifying CTE, run to its end before the first
        // row is inserted (the insert reads its count), so a node's row may come back with the
        // same key; each statement's counting trigger fires at the statement's end.
        sqlx::query(
            "WITH gone AS (
                 DELETE FROM open_steps AS o USING UNNEST($1::text[], $2::text[]) AS c (instance, node)
                 WHERE o.instance = c.instance AND o.node = c.node RETURNING 1)
             INSERT INTO open_steps (instance, node, reader, due_key, overdue)
             SELECT * FROM UNNEST($3::text[], $4::text[], $5::text[], $6::bigint[], $7::bool[])
             WHERE (SELECT count(*) FROM gone) >= 0",
        )
        .bind(nodes.iter().map(|n| n.0).collect::<Vec<_>>())
        .bind(nodes.iter().map(|n| n.1).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.node.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.reader.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| due_key(r.1.due_at)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.overdue).collect::<Vec<_>>())
        .execute(&mut *self.conn)
        .await
        .map_err(map_sqlx)?;
        Ok(())
    }

    async fn advance_version(&mut self, commit: &Commit) -> Result<Advanced, StoreError> {
        let expected = to_i64(commit.expected_version, "version")?;
        let added = to_i64(commit.events.len() as u64, "event count")?;
        // Takes the row lock: a concurrent commit to this instance waits here. The hash the new
        // events chain on comes back in the same round trip.
        let row = sqlx::query(
            "WITH moved AS (
                 UPDATE instances SET version = $1, status = $2,
                        snapshot_version = CASE WHEN $3::text IS NULL THEN snapshot_version ELSE $1 END,
                        updated_at = $4
                 WHERE id = $5 AND version = $6 RETURNING id),
             snapped AS (
                 INSERT INTO snapshots (instance, body) SELECT id, $3::jsonb FROM moved WHERE $3::text IS NOT NULL
                 ON CONFLICT (instance) DO UPDATE SET body = excluded.body)
             SELECT (SELECT count(*) FROM moved), (SELECT hash FROM events WHERE instance = $5 AND seq = $6)",
        )
        .bind(expected + added)
        .bind(commit.status.as_str())
        .bind(commit.snapshot.as_deref())
        .bind(commit_time(commit))
        .bind(commit.instance.as_str())
        .bind(expected)
        .fetch_one(&mut *self.conn)
        .await
        .map_err(map_sqlx)?;
        let moved: i64 = row.try_get(0).map_err(map_sqlx)?;
        if moved != 1 {
            return Ok(Advanced::Refused);
        }
        let hash: Option<String> = row.try_get(1).map_err(map_sqlx)?;
        Ok(Advanced::Bumped(hash.as_deref().map(decode_hash).transpose()?))
    }

    async fn insert_idempotency(&mut self, records: &[(&Commit, &IdempotencyRecord)]) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency
             (principal, idempotency_key, request_hash, response, instance, created_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::text[],
                                  $6::timestamptz[])
             ON CONFLICT (principal, idempotency_key) DO NOTHING",
        )
        .bind(records.iter().map(|r| r.1.principal.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.1.key.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.1.request_hash.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| Json(&r.1.response)).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.0.instance.as_str()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| commit_time(r.0)).collect::<Vec<_>>())
        .execute(&mut *self.conn)
        .await
        .map_err(map_sqlx)?
        .rows_affected();
        Ok(inserted == records.len() as u64)
    }

    async fn insert_events(
        &mut self,
        events: &[&StoredEvent],
        payloads: &[&str],
        log: Option<&LogAppend<'_>>,
    ) -> Result<bool, StoreError> {
        let mut seqs = Vec::with_capacity(events.len());
        let mut leaves: Vec<Option<i64>> = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            seqs.push(to_i64(event.seq, "seq")?);
            leaves.push(log.and_then(|l| l.rows.get(i)).map(|r| to_i64(r.index, "audit index")).transpose()?);
        }
        // One round trip for both tables: the leaves (checked against the stored tree) in a
        // data-modifying CTE, the events only when every leaf was written.
        let sql = if log.is_some() { EVENTS_WITH_LEAVES.as_str() } else { INSERT_EVENTS };
        let mut query = sqlx::query(sql)
            .bind(events.iter().map(|e| e.instance.as_str()).collect::<Vec<_>>())
            .bind(seqs)
            .bind(events.iter().map(|e| e.at).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.role.as_deref()).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
            .bind(payloads)
            .bind(events.iter().map(|e| e.prev_hash.as_str()).collect::<Vec<_>>())
            .bind(events.iter().map(|e| e.hash.as_str()).collect::<Vec<_>>())
            .bind(leaves);
        if let Some(log) = log {
            query = bind_log(query, log)?;
        }
        let written = query.execute(&mut *self.conn).await.map_err(map_sqlx)?.rows_affected();
        Ok(log.is_none() || written == events.len() as u64)
    }

    async fn fire_timers(&mut self, fires: &[(i64, i64, &str)]) -> Result<bool, StoreError> {
        let fired = sqlx::query(
            "UPDATE timers AS t SET state = 'fired'
             FROM UNNEST($1::bigint[], $2::bigint[], $3::text[]) AS f (id, fence, instance)
             WHERE t.id = f.id AND t.fence = f.fence AND t.instance = f.instance AND t.state = 'claimed'",
        )
        .bind(fires.iter().map(|f| f.0).collect::<Vec<_>>())
        .bind(fires.iter().map(|f| f.1).collect::<Vec<_>>())
        .bind(fires.iter().map(|f| f.2).collect::<Vec<_>>())
        .execute(&mut *self.conn)
        .await
        .map_err(map_sqlx)?
        .rows_affected();
        Ok(fired == fires.len() as u64)
    }

    async fn insert_late_steps(&mut self, rows: &[(&str, &LateStep)]) -> Result<(), StoreError> {
        // A burst of deadlines breaches one step per firing: the batch's rows in one statement.
        sqlx::query(
            "INSERT INTO late_steps (instance, node, role, office, due_at, late_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[])
             ON CONFLICT DO NOTHING",
        )
        .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.node.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.role.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.office.as_deref()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| crate::audit::truncate_to_micros(r.1.due_at)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| crate::audit::truncate_to_micros(r.1.late_at)).collect::<Vec<_>>())
        .execute(&mut *self.conn)
        .await
        .map_err(map_sqlx)?;
        Ok(())
    }

    async fn policy_published(&mut self, name: &str, hash: &str) -> Result<bool, StoreError> {
        let published: Option<i32> = sqlx::query_scalar("SELECT 1 FROM policies WHERE name = $1 AND hash = $2")
            .bind(name)
            .bind(hash)
            .fetch_optional(&mut *self.conn)
            .await
            .map_err(map_sqlx)?;
        Ok(published.is_some())
    }

    async fn insert_instance_rows(&mut self, instances: &[&InstanceRecord]) -> Result<u64, StoreError> {
        // The snapshot into its own table (migration 0016), in the same statement.
        let inserted: i64 = sqlx::query_scalar(
            "WITH i AS (
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[],
                                      $6::timestamptz[], $7::timestamptz[])
                     AS i (id, policy_name, policy_hash, status, snapshot, created_at, updated_at)),
             inserted AS (
                 INSERT INTO instances (id, policy_name, policy_hash, version, status, created_at, updated_at)
                 SELECT id, policy_name, policy_hash, 0, status, created_at, updated_at FROM i
                 ON CONFLICT (id) DO NOTHING RETURNING id),
             snapped AS (
                 INSERT INTO snapshots (instance, body) SELECT i.id, i.snapshot FROM i JOIN inserted USING (id))
             SELECT count(*) FROM inserted",
        )
        .bind(instances.iter().map(|i| i.id.as_str()).collect::<Vec<_>>())
        .bind(instances.iter().map(|i| i.policy_name.as_str()).collect::<Vec<_>>())
        .bind(instances.iter().map(|i| i.policy_hash.as_str()).collect::<Vec<_>>())
        .bind(instances.iter().map(|i| i.status.as_str()).collect::<Vec<_>>())
        .bind(instances.iter().map(|i| Json(&i.snapshot)).collect::<Vec<_>>())
        .bind(instances.iter().map(|i| truncate_to_micros(i.created_at)).collect::<Vec<_>>())
        .bind(instances.iter().map(|i| truncate_to_micros(i.updated_at)).collect::<Vec<_>>())
        .fetch_one(&mut *self.conn)
        .await
        .map_err(map_sqlx)?;
        super::common::to_u64(inserted, "count")
    }

    async fn version_of(&mut self, instance: &str) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar("SELECT version FROM instances WHERE id = $1")
            .bind(instance)
            .fetch_optional(&mut *self.conn)
            .await
            .map_err(map_sqlx)
    }

    async fn raise_counter_below(&mut self, key: &str, cap: i64) -> Result<bool, StoreError> {
        let raised = sqlx::query(
            "INSERT INTO counters (key, value) VALUES ($1, 1)
             ON CONFLICT (key) DO UPDATE SET value = counters.value + 1 WHERE counters.value < $2",
        )
        .bind(key)
        .bind(cap)
        .execute(&mut *self.conn)
        .await
        .map_err(map_sqlx)?
        .rows_affected();
        Ok(raised == 1)
    }

    async fn release_counter(&mut self, key: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE counters SET value = value - 1 WHERE key = $1 AND value > 0")
            .bind(key)
            .execute(&mut *self.conn)
            .await
            .map(|_| ())
            .map_err(map_sqlx)
    }

    async fn set_policy_hash(&mut self, instance: &str, hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE instances SET policy_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(instance)
            .execute(&mut *self.conn)
            .await
            .map(|_| ())
            .map_err(map_sqlx)
    }

    /// A transaction-scoped advisory lock orders the appends of every node's transactions; the
    /// hints ride with it (`instance\tseq`, what `PgStore::commit_hints` reads).
    async fn lock_log(&mut self, hints: &[(&str, u64)]) -> Result<(), StoreError> {
        if hints.is_empty() {
            return lock_log(self.conn).await;
        }
        let hints: Vec<String> = hints.iter().map(|(instance, seq)| format!("{instance}\t{seq}")).collect();
        sqlx::query(
            "SELECT pg_advisory_xact_lock(1212, hashtext(current_schema())),
                    (SELECT count(pg_notify($1, hint)) FROM unnest($2::text[]) AS hint)",
        )
        .bind(self.channel)
        .bind(hints)
        .execute(&mut *self.conn)
        .await
        .map(|_| ())
        .map_err(map_sqlx)
    }

    /// Another transaction-scoped advisory lock, one per schema, beside the log's.
    async fn lock_counters(&mut self) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock(1213, hashtext(current_schema()))")
            .execute(&mut *self.conn)
            .await
            .map(|_| ())
            .map_err(map_sqlx)
    }

    /// Under the log's lock: a commit's append took it ([`BatchWriter::lock_log`]) and comes
    /// here only when its hint was stale (the lock again is no wait); the backfill's first
    /// append takes it here.
    async fn log_frontier(&mut self) -> Result<(u64, Vec<crate::audit::merkle::Hash>), StoreError> {
        lock_log(self.conn).await?;
        let row = sqlx::query("SELECT idx, peaks FROM audit_leaves ORDER BY idx DESC LIMIT 1")
            .fetch_optional(&mut *self.conn)
            .await
            .map_err(map_sqlx)?;
        let Some(row) = row else { return Ok((0, Vec::new())) };
        let last: i64 = row.try_get("idx").map_err(map_sqlx)?;
        let peaks: Option<Vec<u8>> = row.try_get("peaks").map_err(map_sqlx)?;
        let peaks = peaks.ok_or_else(|| StoreError::Corrupt(format!("audit leaf {last} carries no frontier")))?;
        Ok((super::common::to_u64(last, "audit index")? + 1, super::batch::peaks_from_bytes(&peaks)?))
    }

    async fn insert_log_leaves(&mut self, log: &LogAppend<'_>) -> Result<bool, StoreError> {
        let (mut idx, mut seqs) = (Vec::with_capacity(log.rows.len()), Vec::with_capacity(log.rows.len()));
        for r in &log.rows {
            idx.push(to_i64(r.index, "audit index")?);
            seqs.push(to_i64(r.seq, "seq")?);
        }
        let query = sqlx::query(AssertSqlSafe(leaves_sql([1, 2, 3, 4, 5, 6, 7])))
            .bind(idx)
            .bind(log.rows.iter().map(|r| r.instance).collect::<Vec<_>>())
            .bind(seqs);
        let written = bind_log(query, log)?.execute(&mut *self.conn).await.map_err(map_sqlx)?.rows_affected();
        Ok(written == log.rows.len() as u64)
    }
}

/// A batch's events, `$1`…`$10` one array a column.
const INSERT_EVENTS: &str =
    "INSERT INTO events (instance, seq, at, actor, role, kind, payload, prev_hash, hash, log_index)
     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[],
                          $6::text[], $7::text[]::jsonb[], $8::text[], $9::text[], $10::bigint[])";

/// The events with their leaves: the events' instances and seqs, their leaves' indexes, then
/// [`bind_log`]'s `$11`…`$14`. Made once: it is every commit's statement.
static EVENTS_WITH_LEAVES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH leaves AS ({} RETURNING 1)
         {INSERT_EVENTS} WHERE (SELECT count(*) FROM leaves) = cardinality($1::text[])",
        leaves_sql([10, 1, 2, 11, 12, 13, 14])
    )
});

/// The leaves' insert with its parameters numbered `p`: the arrays of indexes, instances, seqs,
/// leaf hashes and peaks, then the check — the last leaf's index (NULL: the tree must be empty)
/// and the peaks it must carry.
fn leaves_sql(p: [u8; 7]) -> String {
    format!(
        "INSERT INTO audit_leaves (idx, instance, seq, leaf, peaks)
         SELECT * FROM UNNEST(${}::bigint[], ${}::text[], ${}::bigint[], ${}::bytea[], ${}::bytea[])
         WHERE CASE WHEN ${}::bigint IS NULL THEN NOT EXISTS (SELECT 1 FROM audit_leaves)
               ELSE EXISTS (SELECT 1 FROM (SELECT idx, peaks FROM audit_leaves ORDER BY idx DESC LIMIT 1) l
                            WHERE l.idx = ${5} AND l.peaks = ${6}::bytea) END",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    )
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// A log's leaf hashes, peaks and check, in that order.
fn bind_log<'q>(query: Query<'q>, log: &LogAppend<'_>) -> Result<Query<'q>, StoreError> {
    let last = log.after.as_ref().map(|(last, _)| to_i64(*last, "audit index")).transpose()?;
    Ok(query
        .bind(log.rows.iter().map(|r| r.leaf.to_vec()).collect::<Vec<_>>())
        .bind(log.rows.iter().map(|r| r.peaks.clone()).collect::<Vec<_>>())
        .bind(last)
        .bind(log.after.as_ref().map(|(_, peaks)| peaks.clone())))
}

/// Issue 12.1: the audit log's transaction-scoped advisory lock, one per schema (nodes sharing a
/// database share a schema; tests on one database each use their own).
pub(super) async fn lock_log(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(1212, hashtext(current_schema()))")
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    Ok(())
}
